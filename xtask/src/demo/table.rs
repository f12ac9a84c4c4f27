//! The live table: a pure rendering from journey rows to lines, and the terminal output that
//! redraws it in place (or prints it as plain lines now and then when stdout is not a
//! terminal, so logs stay readable).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use journey_operator::api::Journey;
use kube::ResourceExt;

use super::feed::DELIVERIES_LIMIT;

/// One journey as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub phase: Option<String>,
    pub inside: i64,
    pub held: i64,
    /// Deliveries recorded by the data plane; `None` when it did not answer.
    pub deliveries: Option<usize>,
    /// Why it is paused: the pause reason, and the emergency holds keeping it paused.
    pub hold: Option<String>,
}

impl Row {
    pub fn from_journey(journey: &Journey, deliveries: Option<usize>) -> Row {
        let status = journey.status.clone().unwrap_or_default();
        let counts = status.profiles.unwrap_or_default();
        let hold = status.pause.and_then(|p| {
            // The engine's reason under a hold may already name the holds.
            let by = p
                .held_by
                .iter()
                .filter(|h| !p.reason.as_deref().is_some_and(|r| r.contains(h.as_str())))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            match (p.reason, by.is_empty()) {
                (Some(reason), true) => Some(reason),
                (Some(reason), false) => Some(format!("{reason} ({by})")),
                (None, false) => Some(by),
                (None, true) => None,
            }
        });
        Row {
            name: journey.name_any(),
            phase: status.phase.map(|p| format!("{p:?}")),
            inside: counts.inside,
            held: counts.held,
            deliveries,
            hold,
        }
    }
}

fn deliveries_cell(deliveries: Option<usize>) -> String {
    match deliveries {
        Some(n) if n >= DELIVERIES_LIMIT => format!("{DELIVERIES_LIMIT}+"),
        Some(n) => n.to_string(),
        None => "?".to_string(),
    }
}

/// The whole frame: the story's lines, the traffic line, then one line per journey.
pub fn render(story: &[String], posted: u64, rows: &[Row]) -> Vec<String> {
    let mut lines: Vec<String> = story.to_vec();
    lines.push(format!("{posted} simulated events posted (Ctrl-C to stop)"));
    lines.push(format!(
        "{:<22} {:<10} {:>7} {:>7} {:>10}  {}",
        "JOURNEY", "PHASE", "INSIDE", "HELD", "DELIVERIES", "HOLD"
    ));
    for row in rows {
        lines.push(
            format!(
                "{:<22} {:<10} {:>7} {:>7} {:>10}  {}",
                row.name,
                row.phase.as_deref().unwrap_or("-"),
                row.inside,
                row.held,
                deliveries_cell(row.deliveries),
                row.hold.as_deref().unwrap_or("-"),
            )
            .trim_end()
            .to_string(),
        );
    }
    lines
}

/// Where frames go: redrawn in place on a terminal, printed every `log_every` otherwise.
pub struct Screen {
    terminal: bool,
    log_every: Duration,
    last_plain: Option<Instant>,
}

impl Screen {
    pub fn new(log_every: Duration) -> Screen {
        Screen {
            terminal: std::io::stdout().is_terminal(),
            log_every,
            last_plain: None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Shows the frame: on a terminal, cursor home and clear the screen first (robust to
    /// lines that wrap); otherwise only when `log_every` has passed since the last one.
    pub fn show(&mut self, frame: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.terminal {
            let _ = write!(out, "\x1b[H\x1b[J");
        } else {
            if self
                .last_plain
                .is_some_and(|at| at.elapsed() < self.log_every)
            {
                return;
            }
            self.last_plain = Some(Instant::now());
            let _ = writeln!(out);
        }
        for line in frame {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// A line for the log (a stage starting, a refused step): printed at once when stdout is
    /// not a terminal; on a terminal the story lines of the frame show it.
    pub fn note(&self, line: &str) {
        if !self.terminal {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, phase: &str, inside: i64, held: i64, deliveries: Option<usize>) -> Row {
        Row {
            name: name.into(),
            phase: Some(phase.into()),
            inside,
            held,
            deliveries,
            hold: None,
        }
    }

    #[test]
    fn renders_story_header_and_one_line_per_journey() {
        let mut held = row("onboarding", "Paused", 42, 7, Some(31));
        held.hold = Some("demo: incident 4711 (JourneyHold journeys-demo/incident-4711)".into());
        let rows = vec![
            row("add-to-cart", "Live", 120, 0, Some(0)),
            held,
            Row {
                name: "scheduled".into(),
                phase: None,
                inside: 0,
                held: 0,
                deliveries: None,
                hold: None,
            },
            row("busy", "Live", 9000, 0, Some(1000)),
        ];
        let story = vec!["stage 4/5: a JourneyHold over team: growth".to_string()];
        let lines = render(&story, 640, &rows);
        assert_eq!(
            lines,
            vec![
                "stage 4/5: a JourneyHold over team: growth",
                "640 simulated events posted (Ctrl-C to stop)",
                "JOURNEY                PHASE       INSIDE    HELD DELIVERIES  HOLD",
                "add-to-cart            Live           120       0          0  -",
                "onboarding             Paused          42       7         31  demo: incident 4711 (JourneyHold journeys-demo/incident-4711)",
                "scheduled              -                0       0          ?  -",
                "busy                   Live          9000       0      1000+  -",
            ]
        );
    }

    #[test]
    fn renders_an_empty_namespace() {
        let lines = render(&[], 0, &[]);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("JOURNEY"));
    }
}
