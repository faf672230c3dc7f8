//! Guarantees: every `.wgsl` file under shaders/wgsl parses and validates with naga (no GPU
//! needed), every file is in the registry, every registered kernel is an entry point of its file
//! with the workgroup size the host assumes, and no storage struct uses vec3.

use fairground_shaders::{Family, Kernel};
use std::path::Path;

fn validate(name: &str, src: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    module
}

#[test]
fn every_wgsl_file_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/wgsl exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for name in &files {
        let src = std::fs::read_to_string(dir.join(name)).expect("readable");
        validate(name, &src);
        assert!(
            !src.contains("vec3<f32>") && !src.contains("vec3f"),
            "{name}: no vec3 in storage"
        );
        assert!(!src.contains("atomic<f32>"), "{name}: no float atomics");
        assert!(
            Family::ALL.iter().any(|f| f.file_name() == name),
            "{name} is not in the registry"
        );
    }
    assert_eq!(
        files.len(),
        Family::ALL.len(),
        "registry lists a file that does not exist"
    );
}

#[test]
fn registry_kernels_are_entry_points_with_the_assumed_workgroup_size() {
    for family in Family::ALL {
        let module = validate(family.file_name(), family.source());
        for kernel in Kernel::ALL.iter().filter(|k| k.family() == family) {
            let ep = module
                .entry_points
                .iter()
                .find(|e| e.name == kernel.entry_point())
                .unwrap_or_else(|| {
                    panic!(
                        "{} has no entry point {}",
                        family.file_name(),
                        kernel.entry_point()
                    )
                });
            assert_eq!(
                ep.workgroup_size,
                [kernel.workgroup_size(), 1, 1],
                "{kernel:?}"
            );
        }
    }
}
