//! mmguard-eval
