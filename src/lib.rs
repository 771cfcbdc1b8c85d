//! kiln: a render-only GitOps plan compiler.
//!
//! The compiler is a pipeline of stages, each in its own module:
//! `load` (YAML with positions, schemas) → `resolve` (references) →
//! `merge` (layered values with provenance) → `render` (templates) →
//! `emit` (plan + atomic write). `plan` holds the types the compiler hands
//! to the executor. `cli` turns command lines into calls of these stages.

pub mod cli;
pub mod diag;
pub mod emit;
pub mod load;
pub mod merge;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod scaffold;
pub mod yaml;
