//! With the `system` feature: embeds the directory umfa-sys linked libumfa from as an rpath in
//! this crate's own test, example and benchmark binaries, so `cargo test` runs without
//! LD_LIBRARY_PATH. (umfa-sys publishes the directory as `DEP_UMFA_LIB_DIR` through
//! `links = "umfa"`.) Applications that depend on `umfa` choose their own rpath or loader path.
//! The default `bundled` build links the core statically and publishes no directory, so there
//! is nothing to do.

fn main() {
    println!("cargo:rerun-if-env-changed=UMFA_NO_RPATH");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "windows" || std::env::var_os("UMFA_NO_RPATH").is_some() {
        return;
    }
    if let Some(dir) = std::env::var_os("DEP_UMFA_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.to_string_lossy());
    }
}
