//! The commands against the cluster. Spec edits are JSON merge patches under the field manager
//! `kubectl-journey`; the apiserver's admission errors come back as they are.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, anyhow, bail};
use journey_operator::api::Journey;
use journey_operator::api::annotations::{
    CHANGE_REF, FULL_RUN_REQUESTED_AT, RESTART_REQUESTED_AT, RUN_REQUESTED_AT,
};
use journey_operator::api::hold::{
    ClusterJourneyHold, ClusterJourneyHoldSpec, HoldSelector, JourneyHold, JourneyHoldSpec,
};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

use super::args::{
    DescribeArgs, EditArgs, GetArgs, HoldCreateArgs, HoldListArgs, HoldReleaseArgs, PauseArgs,
    RequestArgs, RunArgs, StopArgs, Target,
};
use super::{gitops, render, selector};

pub const FIELD_MANAGER: &str = "kubectl-journey";
/// At most this many events in `describe`.
const MAX_EVENTS: usize = 20;

pub struct Ctx {
    pub client: Client,
    pub namespace: String,
}

/// The apiserver's message (an admission error, a 404) without the client's wrapping.
fn api_error(e: kube::Error, what: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(status)
            if status.code == 404 && status.message.contains("page not found") =>
        {
            anyhow!("{what}: the journey.dev API is not served here (are the CRDs installed?)")
        }
        kube::Error::Api(status) => anyhow!("{what}: {}", status.message),
        other => anyhow!("{what}: {other}"),
    }
}

fn journeys_api(ctx: &Ctx, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<Journey>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    }
}

fn to_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

async fn get_journey(ctx: &Ctx, name: &str) -> anyhow::Result<DynamicObject> {
    journeys_api(ctx, Some(&ctx.namespace))
        .get(name)
        .await
        .map_err(|e| api_error(e, &format!("journey {}/{name}", ctx.namespace)))
}

async fn list_journeys(
    ctx: &Ctx,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> anyhow::Result<Vec<DynamicObject>> {
    let mut params = ListParams::default();
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let scope = namespace.map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
    let list = journeys_api(ctx, namespace)
        .list(&params)
        .await
        .map_err(|e| api_error(e, &format!("listing journeys in {scope}")))?;
    let mut items = list.items;
    items.sort_by(|a, b| {
        (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
            .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
    });
    Ok(items)
}

/// The journeys a name or selector names in the namespace; none is an error.
async fn targets(ctx: &Ctx, target: &Target) -> anyhow::Result<Vec<DynamicObject>> {
    match (&target.name, &target.selector) {
        (Some(name), _) => Ok(vec![get_journey(ctx, name).await?]),
        (None, Some(sel)) => {
            let items = list_journeys(ctx, Some(&ctx.namespace), Some(sel)).await?;
            if items.is_empty() {
                bail!("no journeys match -l {sel} in namespace {}", ctx.namespace);
            }
            Ok(items)
        }
        (None, None) => bail!("name a journey or give -l SELECTOR"),
    }
}

pub async fn get(ctx: &Ctx, args: GetArgs) -> anyhow::Result<()> {
    let items = match &args.name {
        Some(name) => vec![get_journey(ctx, name).await?],
        None => {
            let ns = (!args.all_namespaces).then_some(ctx.namespace.as_str());
            list_journeys(ctx, ns, args.selector.as_deref()).await?
        }
    };
    if items.is_empty() {
        let scope = if args.all_namespaces {
            "any namespace".to_string()
        } else {
            format!("namespace {}", ctx.namespace)
        };
        eprintln!("No journeys found in {scope}.");
        return Ok(());
    }
    let values: Vec<Value> = items.iter().map(to_json).collect();
    print!("{}", render::journeys(&values, args.all_namespaces));
    Ok(())
}

pub async fn describe(ctx: &Ctx, args: DescribeArgs) -> anyhow::Result<()> {
    let journey = get_journey(ctx, &args.name).await?;
    let resource = ApiResource::erase::<Event>(&());
    let events_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &resource);
    let mut events: Vec<Value> = match events_api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(to_json)
            .filter(|e| e["regarding"]["kind"] == "Journey" && e["regarding"]["name"] == args.name)
            .collect(),
        Err(e) => {
            eprintln!("{:#}", api_error(e, "listing events"));
            Vec::new()
        }
    };
    events.sort_by_key(render::event_time);
    let skip = events.len().saturating_sub(MAX_EVENTS);
    let manager = gitops::detect(&journey.metadata);
    print!(
        "{}",
        render::describe(
            &to_json(&journey),
            &events[skip..],
            manager.as_ref().map(|m| m.name())
        )
    );
    Ok(())
}

fn change_ref_patch(change_ref: Option<&str>) -> Value {
    match change_ref {
        Some(url) => json!({"annotations": {CHANGE_REF: url}}),
        None => json!({}),
    }
}

/// Merges `spec` into each target journey, warning first about those GitOps manages.
async fn edit_spec(ctx: &Ctx, edit: &EditArgs, spec: Value, verb: &str) -> anyhow::Result<()> {
    let journeys = targets(ctx, &edit.target).await?;
    let api = journeys_api(ctx, Some(&ctx.namespace));
    let patch = json!({"metadata": change_ref_patch(edit.change_ref.as_deref()), "spec": spec});
    for journey in journeys {
        let name = journey.metadata.name.clone().unwrap_or_default();
        if let Some(manager) = gitops::detect(&journey.metadata) {
            eprintln!(
                "{}",
                gitops::warning(&ctx.namespace, &name, &journey.metadata, &manager)
            );
        }
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| api_error(e, &format!("journey {}/{name}", ctx.namespace)))?;
        println!("journey.journey.dev/{name} {verb}");
    }
    Ok(())
}

pub async fn pause(ctx: &Ctx, args: PauseArgs) -> anyhow::Result<()> {
    let spec =
        json!({"state": "Paused", "pause": {"mode": args.mode.as_str(), "reason": args.reason}});
    edit_spec(ctx, &args.edit, spec, "paused").await
}

pub async fn set_state(ctx: &Ctx, args: EditArgs, state: &str, verb: &str) -> anyhow::Result<()> {
    edit_spec(ctx, &args, json!({"state": state}), verb).await
}

pub async fn stop(ctx: &Ctx, args: StopArgs) -> anyhow::Result<()> {
    if !args.yes {
        let journeys = targets(ctx, &args.edit.target).await?;
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            bail!(
                "refusing to stop without confirmation: standard input is not a terminal; pass --yes"
            );
        }
        for journey in &journeys {
            let name = journey.metadata.name.as_deref().unwrap_or_default();
            eprint!(
                "Stopping {}/{name} is terminal. Type the journey's name to confirm: ",
                ctx.namespace
            );
            std::io::stderr().flush().ok();
            let mut answer = String::new();
            stdin
                .lock()
                .read_line(&mut answer)
                .context("reading the confirmation")?;
            if answer.trim() != name {
                bail!(
                    "journey {}/{name} not stopped: the name did not match",
                    ctx.namespace
                );
            }
        }
    }
    set_state(ctx, args.edit, "Stopped", "stopped").await
}

/// A fresh token for a request annotation.
fn token() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn request(
    ctx: &Ctx,
    args: &RequestArgs,
    annotation: &str,
    verb: &str,
) -> anyhow::Result<()> {
    let token = token();
    let mut annotations = json!({annotation: token});
    if let Some(url) = &args.change_ref {
        annotations[CHANGE_REF] = json!(url);
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    journeys_api(ctx, Some(&ctx.namespace))
        .patch(
            &args.name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| api_error(e, &format!("journey {}/{}", ctx.namespace, args.name)))?;
    println!(
        "journey.journey.dev/{} {verb} ({annotation}={token})",
        args.name
    );
    Ok(())
}

pub async fn restart(ctx: &Ctx, args: RequestArgs) -> anyhow::Result<()> {
    request(ctx, &args, RESTART_REQUESTED_AT, "restart requested").await
}

pub async fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<()> {
    let (annotation, verb) = if args.full {
        (FULL_RUN_REQUESTED_AT, "full run requested")
    } else {
        (RUN_REQUESTED_AT, "run requested")
    };
    request(ctx, &args.request, annotation, verb).await
}

fn parse_selector(flag: &str, text: &str) -> anyhow::Result<HoldSelector> {
    selector::parse(text).map_err(|e| anyhow!("{flag}: {e}"))
}

pub async fn hold_create(ctx: &Ctx, args: HoldCreateArgs) -> anyhow::Result<()> {
    let selector = parse_selector("-l", &args.selector)?;
    match journey_operator::api::duration::parse_duration(&args.duration) {
        Some(d) if !d.is_zero() => {}
        _ => bail!(
            "--duration {:?} is not a positive duration like 30m or 2h (at most 336h)",
            args.duration
        ),
    }
    let reason = Some(args.reason.clone());
    let duration = Some(args.duration.clone());
    let mut annotations = std::collections::BTreeMap::new();
    if let Some(url) = &args.change_ref {
        annotations.insert(CHANGE_REF.to_string(), url.clone());
    }
    let post = kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    if args.all_namespaces {
        let namespace_selector = match &args.namespace_selector {
            Some(text) => parse_selector("--namespace-selector", text)?,
            None => HoldSelector::default(),
        };
        let mut hold = ClusterJourneyHold::new(
            &args.name,
            ClusterJourneyHoldSpec {
                namespace_selector: Some(namespace_selector),
                selector: Some(selector),
                mode: args.mode.pause_mode(),
                reason,
                duration,
            },
        );
        hold.meta_mut().annotations = (!annotations.is_empty()).then_some(annotations);
        let api: Api<ClusterJourneyHold> = Api::all(ctx.client.clone());
        api.create(&post, &hold)
            .await
            .map_err(|e| api_error(e, &format!("clusterjourneyhold {}", args.name)))?;
        println!("clusterjourneyhold.journey.dev/{} created", args.name);
    } else {
        let mut hold = JourneyHold::new(
            &args.name,
            JourneyHoldSpec {
                selector: Some(selector),
                mode: args.mode.pause_mode(),
                reason,
                duration,
            },
        );
        hold.meta_mut().annotations = (!annotations.is_empty()).then_some(annotations);
        let api: Api<JourneyHold> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        api.create(&post, &hold)
            .await
            .map_err(|e| api_error(e, &format!("journeyhold {}/{}", ctx.namespace, args.name)))?;
        println!("journeyhold.journey.dev/{} created", args.name);
    }
    Ok(())
}

pub async fn hold_list(ctx: &Ctx, args: HoldListArgs) -> anyhow::Result<()> {
    let namespaced = ApiResource::erase::<JourneyHold>(&());
    let api: Api<DynamicObject> = if args.all_namespaces {
        Api::all_with(ctx.client.clone(), &namespaced)
    } else {
        Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &namespaced)
    };
    let mut items: Vec<(String, Value)> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, "listing journeyholds"))?
        .items
        .iter()
        .map(|h| ("JourneyHold".to_string(), to_json(h)))
        .collect();
    if args.all_namespaces || args.cluster {
        let cluster = ApiResource::erase::<ClusterJourneyHold>(&());
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &cluster);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(e, "listing clusterjourneyholds"))?;
        items.extend(
            list.items
                .iter()
                .map(|h| ("ClusterJourneyHold".to_string(), to_json(h))),
        );
    }
    if items.is_empty() {
        eprintln!("No holds found.");
        return Ok(());
    }
    print!("{}", render::holds(&items, args.all_namespaces));
    Ok(())
}

pub async fn hold_release(ctx: &Ctx, args: HoldReleaseArgs) -> anyhow::Result<()> {
    if args.cluster {
        let api: Api<ClusterJourneyHold> = Api::all(ctx.client.clone());
        api.delete(&args.name, &DeleteParams::default())
            .await
            .map_err(|e| api_error(e, &format!("clusterjourneyhold {}", args.name)))?;
        println!("clusterjourneyhold.journey.dev/{} released", args.name);
    } else {
        let api: Api<JourneyHold> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        api.delete(&args.name, &DeleteParams::default())
            .await
            .map_err(|e| api_error(e, &format!("journeyhold {}/{}", ctx.namespace, args.name)))?;
        println!("journeyhold.journey.dev/{} released", args.name);
    }
    Ok(())
}
