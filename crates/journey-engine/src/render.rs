//! Rendering a delivery's message from its step's compiled templates: what a template reads
//! (the profile as it is now, the enrollment's event, the journey, the delivery's key) and
//! where the result goes (stored with the delivery, once).

use super::definition::{CStepKind, CompiledDefinition};
use super::error::Result;
use super::store::{Delivery, StoreTx};
pub use super::template::TemplateError;
use super::template::{Context, DeliveryVars, JourneyVars, MessageTemplate};

/// The reason a delivery records when its template fails at send time.
pub const TEMPLATE_ERROR: &str = "TemplateError";

/// The compiled template of the action step a delivery came from; `None` when that version
/// no longer has the step (the message is then sent as stored).
pub(crate) fn step_template<'d>(
    def: &'d CompiledDefinition,
    step_id: &str,
) -> Option<&'d MessageTemplate> {
    let i = def.step_index(step_id)?;
    match &def.steps.get(i)?.kind {
        CStepKind::Action { template, .. } => Some(template),
        _ => None,
    }
}

/// Renders `template` for delivery `d` of journey `journey_key` (`namespace/name`), reading
/// the enrollment's event from the store only when the message is templated.
pub(crate) fn render(
    tx: &mut dyn StoreTx,
    template: &MessageTemplate,
    d: &Delivery,
    journey_key: &str,
    profile: &serde_json::Value,
) -> Result<std::result::Result<serde_json::Value, TemplateError>> {
    if !template.is_templated() {
        return Ok(Ok(d.message.clone()));
    }
    let event = match d.event_id {
        Some(id) => tx.event_payload(id)?.unwrap_or(serde_json::Value::Null),
        None => serde_json::Value::Null,
    };
    let (namespace, name) = journey_key.split_once('/').unwrap_or(("", journey_key));
    let key = d.idempotency_key();
    Ok(template.render(&Context {
        profile,
        event: &event,
        journey: JourneyVars {
            namespace,
            name,
            version: d.version,
        },
        delivery: DeliveryVars {
            idempotency_key: &key,
            channel: &d.channel,
            step: &d.step_id,
        },
    }))
}
