//! mmguard-model
