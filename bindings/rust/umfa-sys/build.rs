//! Provides libumfa to the crate: either compiles the core from source and links it statically
//! (the `bundled` feature, the default), or finds an installed libumfa and links it dynamically
//! (the `system` feature, `UMFA_SYSTEM=1`, or `UMFA_LIB_DIR`).
//!
//! # Bundled build
//!
//! The core's API layer, classic API, CPU backend and OS seams
//! (`core/src/{api,compat,cpu,platform}`, every `.cpp` found there; never the CUDA sources: the
//! CUDA backend is a separate library that the core loads at run time) are compiled with the C++
//! compiler and archived into a static library that is linked into the final binary, so the
//! binary needs no libumfa at run time. The sources come
//! from the umfa repository when this crate sits in it (`bindings/rust/umfa-sys`), otherwise from
//! the crate's `vendor/` folder, which `vendor.sh` fills before `cargo package`.
//!
//! The compiler is driven with `std::process::Command`, following the conventions of the `cc`
//! crate: `CXX`, `CXXFLAGS`, `AR` and `CXXSTDLIB` (each also as `<VAR>_<target>`,
//! `<VAR>_<target_with_underscores>` and `TARGET_<VAR>`/`HOST_<VAR>`), Cargo's `TARGET`,
//! `OPT_LEVEL`, `DEBUG`, `PROFILE` and `NUM_JOBS`. Files compile in parallel (`NUM_JOBS` at a
//! time); an unchanged file whose dependencies (from the compiler's depfile) are older than its
//! object is not compiled again. The flags mirror core/CMakeLists.txt: C++17 without GNU
//! extensions, hidden visibility, `UMFA_BUILDING_LIBRARY`, the include directories `include/`
//! and `core/src/`, pthreads; SIMD variants pick their instruction set with pragmas inside the
//! files. MSVC is not supported (the core needs GCC or Clang vector extensions).
//!
//! # System library
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

use std::collections::HashSet;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
            tried.push(format!(
                "`{program} --variable=libdir umfa`: could not run ({e})"
            ));
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
    for var in [
        "UMFA_SYSTEM",
        "UMFA_LIB_DIR",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "UMFA_NO_RPATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // docs.rs and similar documentation builds neither compile nor link the native library.
    if env::var_os("DOCS_RS").is_some() {
        return;
    }

    match choose_mode() {
        Mode::Bundled => build_bundled(),
        Mode::System => link_system(),
    }
}

enum Mode {
    Bundled,
    System,
}

/// `system` (feature or `UMFA_SYSTEM`) and `UMFA_LIB_DIR` ask for an installed library and win
/// over `bundled`; without either feature the installed library is the only way.
fn choose_mode() -> Mode {
    let flag = |name: &str| {
        env::var(name)
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false)
    };
    if env::var_os("CARGO_FEATURE_SYSTEM").is_some() || flag("UMFA_SYSTEM") || flag("UMFA_LIB_DIR")
    {
        Mode::System
    } else if env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        Mode::Bundled
    } else {
        Mode::System
    }
}

// --- system library -----------------------------------------------------------------------------

fn link_system() {
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
            let dir = ancestor
                .join("dist")
                .join("native")
                .join(&platform)
                .join("lib");
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
            "\numfa-sys: could not find the native umfa library (the `system` feature, \
             UMFA_SYSTEM or UMFA_LIB_DIR asked for an installed one). Tried, in order:\n  - {}\n\
             Build and install the core (bash core/scripts/build.sh in the umfa repository), or \
             set UMFA_LIB_DIR to the directory that holds {}, or use the default `bundled` \
             feature, which compiles the core into the crate.\n",
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

// --- bundled build ------------------------------------------------------------------------------

/// Where the core's sources are: `include` holds umfa.h, `src` holds backend.h, api/, compat/
/// and cpu/ (the layout of the repository's core/src).
struct CoreSources {
    include: PathBuf,
    src: PathBuf,
    origin: &'static str,
}

/// The folders of `src` whose sources make up the static library (never `cuda`).
const LIBRARY_DIRS: &[&str] = &["api", "compat", "cpu", "platform"];

fn is_core_tree(include: &Path, src: &Path) -> bool {
    include.join("umfa.h").is_file() && LIBRARY_DIRS.iter().all(|d| src.join(d).is_dir())
}

fn locate_sources(manifest: &Path) -> CoreSources {
    // In the umfa repository (bindings/rust/umfa-sys): the repository's own core, so a change
    // there is picked up without copying anything.
    let repo = manifest.join("../../..");
    let (include, src) = (repo.join("include"), repo.join("core").join("src"));
    let in_repo = repo
        .join("bindings/rust/umfa-sys")
        .canonicalize()
        .is_ok_and(|p| manifest.canonicalize().is_ok_and(|m| m == p));
    if in_repo && is_core_tree(&include, &src) {
        return CoreSources {
            include: include.canonicalize().unwrap_or(include),
            src: src.canonicalize().unwrap_or(src),
            origin: "the umfa repository",
        };
    }
    // A packaged crate: the copy that vendor.sh made.
    let vendor = manifest.join("vendor");
    let (include, src) = (vendor.join("include"), vendor.join("src"));
    if is_core_tree(&include, &src) {
        return CoreSources {
            include,
            src,
            origin: "the crate's vendor/ folder",
        };
    }
    panic!(
        "\numfa-sys: the `bundled` build needs the core's sources, and found none: neither the \
         umfa repository around {} nor {}/{{include/umfa.h, src/api, src/compat, src/cpu}}.\n\
         Before `cargo package`, run `bash vendor.sh` in umfa-sys (it copies the core into \
         vendor/). Or link an installed libumfa with the `system` feature or UMFA_LIB_DIR.\n",
        manifest.display(),
        vendor.display()
    );
}

/// Every `.cpp` below `dir`, recursively, sorted (the listing decides what is compiled; the
/// core's CMake build globs the same folders).
fn list_cpp(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("umfa-sys: cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            list_cpp(&path, out);
        } else if path.extension().is_some_and(|e| e == "cpp") {
            out.push(path);
        }
    }
}

/// A rough compile cost, so that the longest files start first: the file's size plus the sizes
/// of the files it `#include "..."`s from its own folder (the SIMD variants include the large
/// kernel body), once each.
fn compile_cost(file: &Path) -> u64 {
    fn walk(file: &Path, seen: &mut HashSet<PathBuf>) -> u64 {
        if !seen.insert(file.to_path_buf()) {
            return 0;
        }
        let Ok(text) = fs::read_to_string(file) else {
            return 0;
        };
        let mut cost = text.len() as u64;
        let dir = file.parent().unwrap_or(Path::new("."));
        for line in text.lines() {
            let line = line.trim_start();
            if let Some(rest) = line.strip_prefix("#include \"") {
                if let Some(name) = rest.split('"').next() {
                    let inc = dir.join(name);
                    if inc.is_file() {
                        cost += walk(&inc, seen);
                    }
                }
            }
        }
        cost
    }
    walk(file, &mut HashSet::new())
}

/// The first of `<var>_<target>`, `<var>_<target_with_underscores>`, `TARGET_<var>` (or
/// `HOST_<var>` when not cross-compiling) and `<var>` that is set, as the `cc` crate reads them.
fn target_env(var: &str, target: &str, host: &str) -> Option<String> {
    let kind = if target == host { "HOST" } else { "TARGET" };
    let names = [
        format!("{var}_{target}"),
        format!("{var}_{}", target.replace('-', "_")),
        format!("{kind}_{var}"),
        var.to_string(),
    ];
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
    }
    names.iter().find_map(|n| env::var(n).ok())
}

/// The GNU tool prefix of a cross toolchain for `target` (Debian's package names), if known.
fn cross_prefix(target: &str) -> Option<String> {
    let parts: Vec<&str> = target.split('-').collect();
    let arch = parts.first().copied().unwrap_or("");
    if target.ends_with("-windows-gnu") {
        return Some(format!("{arch}-w64-mingw32"));
    }
    if target.contains("-linux-") {
        let abi = parts.last().copied().unwrap_or("gnu");
        let arch = match arch {
            a if a.starts_with("armv7") || a.starts_with("thumbv7") => "arm",
            "i586" | "i686" => "i686",
            a => a,
        };
        return Some(format!("{arch}-linux-{abi}"));
    }
    None
}

/// Splits a flags variable on whitespace (as the `cc` crate does).
fn split_flags(value: Option<String>) -> Vec<String> {
    value
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// True when the file `dep` is missing or newer than `time`.
fn newer_than(dep: &Path, time: SystemTime) -> bool {
    match fs::metadata(dep).and_then(|m| m.modified()) {
        Ok(t) => t > time,
        Err(_) => true,
    }
}

/// Whether `obj` is up to date: it exists, and so does its depfile, whose every dependency is
/// no newer than the object.
fn up_to_date(obj: &Path, depfile: &Path) -> bool {
    let Ok(obj_time) = fs::metadata(obj).and_then(|m| m.modified()) else {
        return false;
    };
    let Ok(text) = fs::read_to_string(depfile) else {
        return false;
    };
    // Make syntax: "obj.o: dep1 dep2 \<newline> dep3"; "\ " is a space inside a path.
    let text = text
        .replace("\\\r\n", " ")
        .replace("\\\n", " ")
        .replace("\\ ", "\u{0}");
    let Some((_, deps)) = text.split_once(": ") else {
        return false;
    };
    let mut any = false;
    for dep in deps.split_whitespace() {
        if dep.ends_with(':') {
            continue; // phony targets (-MP)
        }
        any = true;
        if newer_than(Path::new(&dep.replace('\u{0}', " ")), obj_time) {
            return false;
        }
    }
    any
}

struct Job {
    source: PathBuf,
    object: PathBuf,
    depfile: PathBuf,
}

fn run_jobs(compiler: &str, args: &[String], jobs: Vec<Job>, threads: usize) {
    let queue = Arc::new(Mutex::new(jobs));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..threads.max(1) {
        let queue = Arc::clone(&queue);
        let failures = Arc::clone(&failures);
        let compiler = compiler.to_string();
        let args = args.to_vec();
        workers.push(std::thread::spawn(move || loop {
            let job = match queue.lock().unwrap().pop() {
                Some(job) => job,
                None => return,
            };
            if !failures.lock().unwrap().is_empty() {
                return;
            }
            let mut cmd = Command::new(&compiler);
            cmd.args(&args)
                .arg("-MMD")
                .arg("-MF")
                .arg(&job.depfile)
                .arg("-c")
                .arg(&job.source)
                .arg("-o")
                .arg(&job.object);
            let shown = format!("{cmd:?}");
            match cmd.output() {
                Ok(out) if out.status.success() => {
                    // Warnings reach the build log (cargo shows it with -vv or on failure).
                    eprint!("{}", String::from_utf8_lossy(&out.stderr));
                }
                Ok(out) => failures.lock().unwrap().push(format!(
                    "{shown}\n{}\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(e) => failures.lock().unwrap().push(format!(
                    "{shown}\ncould not run `{compiler}`: {e} (set CXX to a C++17 compiler)"
                )),
            }
        }));
    }
    for w in workers {
        w.join().expect("compile worker");
    }
    let failures = failures.lock().unwrap();
    if !failures.is_empty() {
        panic!(
            "\numfa-sys: compiling the bundled core failed:\n{}\n",
            failures.join("\n\n")
        );
    }
}

fn build_bundled() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").expect("TARGET");
    let host = env::var("HOST").expect("HOST");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env_name = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_family = env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    for var in ["NUM_JOBS", "OPT_LEVEL", "DEBUG", "PROFILE"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if target_env_name == "msvc" {
        panic!(
            "\numfa-sys: the `bundled` build needs GCC or Clang (the core uses their vector \
             extensions) and cannot use MSVC; build libumfa with MinGW or Clang and link it \
             with the `system` feature and UMFA_LIB_DIR.\n"
        );
    }

    let core = locate_sources(&manifest);
    println!(
        "cargo:rerun-if-changed={}",
        core.include.join("umfa.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        core.src.join("backend.h").display()
    );
    for dir in LIBRARY_DIRS {
        println!("cargo:rerun-if-changed={}", core.src.join(dir).display());
    }

    let mut sources = Vec::new();
    for dir in LIBRARY_DIRS {
        list_cpp(&core.src.join(dir), &mut sources);
    }
    if sources.is_empty() {
        panic!("umfa-sys: no .cpp files under {}", core.src.display());
    }

    // The compiler and archiver.
    let cross = target != host;
    let prefix = if cross { cross_prefix(&target) } else { None };
    let compiler =
        target_env("CXX", &target, &host).unwrap_or_else(|| match (&prefix, target_os.as_str()) {
            (Some(p), _) => format!("{p}-g++"),
            (None, "macos" | "ios" | "freebsd" | "openbsd") => "c++".to_string(),
            (None, _) if cross => "clang++".to_string(),
            (None, _) => "c++".to_string(),
        });
    let archiver = target_env("AR", &target, &host).unwrap_or_else(|| match &prefix {
        Some(p) => format!("{p}-ar"),
        None => "ar".to_string(),
    });
    let is_clang = {
        let name = Path::new(&compiler)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let by_name = name.as_deref().is_some_and(|n| n.contains("clang"));
        by_name
            || Command::new(&compiler)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("clang"))
                .unwrap_or(false)
    };

    // Flags: what core/CMakeLists.txt sets for libumfa, then the optimization and debug info
    // Cargo asks for, then the user's CXXFLAGS (last, so they can override).
    let mut args: Vec<String> = vec!["-std=c++17".into()];
    let opt = env::var("OPT_LEVEL").unwrap_or_else(|_| "0".into());
    args.push(match opt.as_str() {
        "0" => "-O0".into(),
        "1" => "-O1".into(),
        "2" => "-O2".into(),
        "s" => "-Os".into(),
        "z" if is_clang => "-Oz".into(),
        "z" => "-Os".into(),
        _ => "-O3".into(),
    });
    let debug = env::var("DEBUG").unwrap_or_default();
    if !matches!(debug.as_str(), "" | "false" | "0" | "none") {
        args.push("-g".into());
    }
    if env::var("PROFILE").is_ok_and(|p| p == "release") {
        args.push("-DNDEBUG".into());
    }
    if target_os != "windows" {
        args.push("-fPIC".into());
    }
    args.extend(
        [
            "-fvisibility=hidden",
            "-fvisibility-inlines-hidden",
            "-ffunction-sections",
            "-fdata-sections",
            "-pthread",
            "-DUMFA_BUILDING_LIBRARY",
        ]
        .map(String::from),
    );
    if cross && is_clang {
        args.push(format!("--target={target}"));
    }
    args.push(format!("-I{}", core.include.display()));
    args.push(format!("-I{}", core.src.display()));
    args.extend(split_flags(target_env("CXXFLAGS", &target, &host)));

    // Objects mirror the source tree (api/merge.cpp and cpu/merge.cpp both exist). A change of
    // compiler or flags recompiles everything; otherwise only what changed.
    let obj_root = out_dir.join("obj");
    let stamp_path = out_dir.join("flags.txt");
    let stamp = format!("{compiler}\n{}\n", args.join("\n"));
    let same_flags = fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp);
    if !same_flags {
        // Written back only once every object is compiled with the new flags.
        let _ = fs::remove_file(&stamp_path);
    }
    let mut objects = Vec::new();
    let mut jobs = Vec::new();
    for source in &sources {
        let rel = source.strip_prefix(&core.src).expect("source below src");
        let object = obj_root.join(rel).with_extension("o");
        let depfile = obj_root.join(rel).with_extension("d");
        fs::create_dir_all(object.parent().unwrap()).expect("create object folder");
        objects.push(object.clone());
        if !(same_flags && up_to_date(&object, &depfile)) {
            jobs.push(Job {
                source: source.clone(),
                object,
                depfile,
            });
        }
    }
    // Longest first; the workers pop from the end.
    jobs.sort_by_cached_key(|j| compile_cost(&j.source));
    let threads = env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1usize);
    let compiled = jobs.len();
    let started = std::time::Instant::now();
    run_jobs(&compiler, &args, jobs, threads);
    fs::write(&stamp_path, &stamp).expect("write flags stamp");

    // One static archive from exactly this build's objects.
    let lib_dir = out_dir.join("lib");
    fs::create_dir_all(&lib_dir).expect("create lib folder");
    let archive = lib_dir.join("libumfa_bundled.a");
    let _ = fs::remove_file(&archive);
    let status = Command::new(&archiver)
        .arg("crs")
        .arg(&archive)
        .args(&objects)
        .status()
        .unwrap_or_else(|e| panic!("umfa-sys: could not run `{archiver}`: {e} (set AR)"));
    if !status.success() {
        panic!(
            "umfa-sys: `{archiver} crs {}` failed: {status}",
            archive.display()
        );
    }
    eprintln!(
        "umfa-sys: bundled core from {} ({}): {} of {} files compiled in {:.1} s with {} job(s), \
         `{compiler}` {}",
        core.origin,
        core.src.display(),
        compiled,
        sources.len(),
        started.elapsed().as_secs_f64(),
        threads,
        args.join(" ")
    );

    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=static=umfa_bundled");
    // The C++ runtime and the system libraries the core uses (threads; dlopen for the CUDA
    // backend). CXXSTDLIB overrides the runtime; an empty value links none.
    let stdlib = target_env("CXXSTDLIB", &target, &host).unwrap_or_else(|| {
        match target_os.as_str() {
            "macos" | "ios" | "freebsd" | "openbsd" => "c++",
            "android" => "c++_shared",
            _ => "stdc++",
        }
        .to_string()
    });
    if !stdlib.is_empty() {
        println!("cargo:rustc-link-lib=dylib={stdlib}");
    }
    if target_family == "unix" {
        if !matches!(target_os.as_str(), "android") {
            println!("cargo:rustc-link-lib=dylib=pthread");
        }
        if target_os == "linux" {
            println!("cargo:rustc-link-lib=dylib=dl");
        }
    }
    // Published to dependents' build scripts as DEP_UMFA_INCLUDE (the folder with umfa.h).
    println!("cargo:include={}", core.include.display());
}
