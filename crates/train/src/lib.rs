//! mmguard-train
