//! What a journey means, with no I/O and no Kubernetes: the operator, the engine and `plan`
//! all build on it. Cargo enforces the layering: this crate cannot reach `kube`.
//!
//! It holds the lifecycle table ([`lifecycle`]), the one duration parser ([`duration`]) and the CEL expressions journeys carry ([`expr`]): every expression a user
//! writes is bounded by a non-recursive scan before the CEL parser sees it, then parsed and
//! evaluated on a stack known to be big enough for anything the bounds allow.

pub mod duration;
pub mod expr;
pub mod lifecycle;
