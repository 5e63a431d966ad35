//! Build script, only with feature `protobuf`: compiles `proto/cloudevent.proto` with
//! the pure-Rust `protox`
//! compiler (so no `protoc` binary is needed or downloaded), then generates the
//! prost message types from the resulting FileDescriptorSet into
//! `OUT_DIR/io.cloudevents.v1.rs`, which `src/proto.rs` includes.
//!
//! The well-known types (`Any`, `Timestamp`) are taken from `prost-types` rather
//! than generated here, and maps are `BTreeMap` so encoding an event always gives
//! the same bytes (stable encodings, comparable in tests).

use std::process::ExitCode;

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=proto/cloudevent.proto");
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "protobuf")]
    return compile_proto();
    #[cfg(not(feature = "protobuf"))]
    ExitCode::SUCCESS
}

#[cfg(feature = "protobuf")]
fn compile_proto() -> ExitCode {
    // A build script reports failure through its exit status and stderr; printing
    // the compiler's own message keeps the proto line/column visible to the user.
    let fds = match protox::compile(["cloudevent.proto"], ["proto"]) {
        Ok(fds) => fds,
        Err(err) => {
            eprintln!("error: compiling proto/cloudevent.proto failed: {err:?}");
            return ExitCode::FAILURE;
        }
    };

    let mut config = prost_build::Config::new();
    config.btree_map(["."]);
    if let Err(err) = config.compile_fds(fds) {
        eprintln!("error: generating Rust code for cloudevent.proto failed: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
