//! Downstream heads that stay useful when a modality is missing or broken: Robult (soft
//! positive-unlabeled contrastive alignment with latent reconstruction, semi-supervised) and
//! ModalImmune (training that collapses a chosen modality on purpose). Built so far: Robult's
//! heads and losses ([`robult`]), the numerical pieces of ModalImmune's masking and meta-step
//! ([`linalg`]) and its controller ([`controller`]).

pub mod controller;
pub mod linalg;
pub mod robult;
