//! Measures the stack that parsing and evaluating the deepest expression of each shape the
//! limits allow needs in this build: for each shape, the smallest thread stack (to 16 KiB)
//! on which it compiles and evaluates, found by bisection in child processes (a stack
//! overflow aborts the process). `cargo run --release -p journey-model --example stack_use`;
//! the figures go into BENCHMARKS.md beside `PARSE_STACK_BYTES` and `EVAL_STACK_BYTES`.

use std::process::Command;

use journey_model::expr::worst_cases::{at_depth_limit, deep_profile};
use journey_model::expr::{
    EVAL_STACK_BYTES, PARSE_STACK_BYTES, compile_on_this_stack, eval_on_this_stack,
};

fn fits(phase: &str, index: usize, stack: usize) -> bool {
    let exe = std::env::current_exe().expect("current exe");
    Command::new(exe)
        .args(["--child", phase, &index.to_string(), &stack.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cases = at_depth_limit();
    if args.get(1).map(String::as_str) == Some("--child") {
        let phase = args[2].clone();
        let index: usize = args[3].parse().expect("index");
        let stack: usize = args[4].parse().expect("stack");
        let (_, source) = &cases[index];
        let profile = deep_profile();
        let source = source.clone();
        // Evaluation is measured on its own: compiled first on a thread with room to spare.
        let compiled = if phase == "eval" {
            let source = source.clone();
            std::thread::Builder::new()
                .stack_size(512 * 1024 * 1024)
                .spawn(move || compile_on_this_stack(&source))
                .expect("spawn")
                .join()
                .expect("compiles")
        } else {
            None
        };
        let ok = std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || match compiled {
                Some(expr) => eval_on_this_stack(&expr, &profile),
                None => drop(compile_on_this_stack(&source)),
            })
            .expect("spawn")
            .join()
            .is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cpu}, {cores} cores available");
    println!(
        "stack needed at the limits ({profile} build; guaranteed: parse {} KiB, evaluation {} KiB)",
        PARSE_STACK_BYTES / 1024,
        EVAL_STACK_BYTES / 1024
    );
    let smallest = |phase: &str, index: usize| {
        let (mut low, mut high) = (16 * 1024, 64 * 1024 * 1024);
        if !fits(phase, index, high) {
            return None;
        }
        while high - low > 16 * 1024 {
            let mid = (low + high) / 2;
            if fits(phase, index, mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        Some(high)
    };
    let kib = |b: Option<usize>| b.map_or("> 65536".to_string(), |b| (b / 1024).to_string());
    println!(
        "{:>16}  {:>10}  {:>10}  {:>6}",
        "shape", "parse KiB", "eval KiB", "bytes"
    );
    let (mut parse_worst, mut eval_worst) = (0, 0);
    for (index, (name, source)) in cases.iter().enumerate() {
        let parse = smallest("compile", index);
        let eval = smallest("eval", index);
        parse_worst = parse_worst.max(parse.unwrap_or(usize::MAX));
        eval_worst = eval_worst.max(eval.unwrap_or(usize::MAX));
        println!(
            "{name:>16}  {:>10}  {:>10}  {:>6}",
            kib(parse),
            kib(eval),
            source.len()
        );
    }
    println!(
        "worst: parse {} KiB, evaluation {} KiB",
        kib(Some(parse_worst)),
        kib(Some(eval_worst))
    );
}
