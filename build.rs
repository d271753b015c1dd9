fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/mnema.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_with_config(
        {
            let mut c = tonic_prost_build::Config::new();
            c.protoc_executable(protoc);
            c
        },
        &["proto/mnema.proto"],
        &["proto"],
    )?;
    Ok(())
}
