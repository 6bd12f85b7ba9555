//! Rebuild when a blueprint is added, removed or changed (rust-embed embeds them at compile time).
fn main() {
    println!("cargo:rerun-if-changed=blueprints");
    println!("cargo:rerun-if-changed=src/spec/default.yaml");
}
