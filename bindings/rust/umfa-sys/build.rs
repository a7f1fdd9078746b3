//! Finds libumfa and tells Cargo how to link it.
//!
//! Search order (the first that has the library wins):
//!   1. `UMFA_LIB_DIR`: a directory holding libumfa (an explicit setting that does not hold the
//!      library is an error, never silently skipped);
//!   2. `pkg-config --variable=libdir umfa` (the `pkg-config` command; `PKG_CONFIG` overrides it);
//!   3. `dist/native/<os>-<arch>/lib` in this crate's directory or any directory above it (the
//!      umfa repository's install of the native core).
//!
//! On success it links `umfa` dynamically, adds the directory to the library search path, embeds
//! it as an rpath for this crate's own test binaries, and publishes it to dependents as
//! `DEP_UMFA_LIB_DIR` (the `links = "umfa"` metadata) so they can embed the rpath too.
//! When nothing is found the build fails and lists every place it looked.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file the linker reads for `-l umfa` (the import library on Windows, where the program
/// later loads umfa.dll from its own folder or PATH).
fn library_file_names(target_os: &str, target_env: &str) -> &'static [&'static str] {
    match (target_os, target_env) {
        ("macos" | "ios", _) => &["libumfa.dylib"],
        // GNU ld (x86_64-pc-windows-gnu) reads mingw's import library libumfa.dll.a (or umfa.lib).
        ("windows", "gnu") => &["libumfa.dll.a", "umfa.lib"],
        // link.exe (x86_64-pc-windows-msvc) looks for umfa.lib only; from the mingw build's
        // lib/umfa.def: `lib /def:umfa.def /machine:x64 /out:umfa.lib`.
        ("windows", _) => &["umfa.lib"],
        _ => &["libumfa.so"],
    }
}

fn has_library(dir: &Path, names: &[&str]) -> bool {
    names.iter().any(|n| dir.join(n).exists())
}

/// The platform folder name used under dist/native (Node's `process.platform-process.arch`).
fn platform_dir(target_os: &str, target_arch: &str) -> String {
    let os = match target_os {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match target_arch {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        other => other,
    };
    format!("{os}-{arch}")
}

fn from_pkg_config(tried: &mut Vec<String>, names: &[&str]) -> Option<PathBuf> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&program)
        .args(["--variable=libdir", "umfa"])
        .output();
    match output {
        Err(e) => {
            tried.push(format!("`{program} --variable=libdir umfa`: could not run ({e})"));
            None
        }
        Ok(out) if !out.status.success() => {
            let err = String::from_utf8_lossy(&out.stderr);
            tried.push(format!(
                "`{program} --variable=libdir umfa`: {} ({})",
                out.status,
                err.trim()
            ));
            None
        }
        Ok(out) => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_library(&dir, names) {
                Some(dir)
            } else {
                tried.push(format!(
                    "`{program} --variable=libdir umfa` = {}: no {} there",
                    dir.display(),
                    names.join(" / ")
                ));
                None
            }
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["UMFA_LIB_DIR", "PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "UMFA_NO_RPATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // docs.rs and similar documentation builds have no native library; they never link.
    if env::var_os("DOCS_RS").is_some() {
        return;
    }

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let names = library_file_names(&target_os, &target_env);
    let mut tried: Vec<String> = Vec::new();

    let mut found: Option<PathBuf> = None;
    if let Some(dir) = env::var_os("UMFA_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_library(&dir, names) {
            found = Some(dir);
        } else {
            panic!(
                "umfa-sys: UMFA_LIB_DIR={} does not contain {}",
                dir.display(),
                names.join(" or ")
            );
        }
    } else {
        tried.push("UMFA_LIB_DIR: not set".to_string());
    }

    if found.is_none() {
        found = from_pkg_config(&mut tried, names);
    }

    if found.is_none() {
        let platform = platform_dir(&target_os, &target_arch);
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
        for ancestor in manifest.ancestors() {
            let dir = ancestor.join("dist").join("native").join(&platform).join("lib");
            if has_library(&dir, names) {
                found = Some(dir);
                break;
            }
            tried.push(format!("{}: no {}", dir.display(), names.join(" / ")));
        }
    }

    let dir = match found {
        Some(dir) => dir,
        None => panic!(
            "\numfa-sys: could not find the native umfa library. Tried, in order:\n  - {}\n\
             Build and install the core (bash core/scripts/build.sh in the umfa repository), or \
             set UMFA_LIB_DIR to the directory that holds {}.\n",
            tried.join("\n  - "),
            names.join(" or ")
        ),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=umfa");
    // Published to dependents' build scripts as DEP_UMFA_LIB_DIR.
    println!("cargo:lib_dir={}", dir.display());
    if target_os != "windows" && env::var_os("UMFA_NO_RPATH").is_none() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}
