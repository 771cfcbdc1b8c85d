//! Every address kiln hands an installer must answer (issue 16, item 3): a
//! URL of the executor must be one it serves (a declared artifact, the
//! step's install file, its API), an install source elsewhere must be under
//! the site's spec.installSources, and Windows Setup's InstallFrom/Path must
//! name a `.wim` or `.esd` — checked on what the templates render, not only
//! on the values kiln knows about.

mod common;

use common::{edit, render_fails};

/// A template that points Anaconda's stage 2 at the executor (which serves
/// only planned files, so answers 404 for `.treeinfo`) is refused at the
/// template line.
#[test]
fn an_install_tree_on_the_executor_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "blueprints/rhel9/templates/boot.ipxe.j2",
            "inst.stage2={{ values.rhel.installTree }}",
            "inst.stage2={{ site.bootServer }}/artifacts/rhel9/dvd",
        )
    });
    assert!(
        err.contains("blueprints/rhel9/templates/boot.ipxe.j2:11:")
            && err.contains("renders `http://10.20.0.2:8080/artifacts/rhel9/dvd` into the boot script")
            && err.contains("answers 404"),
        "{err}"
    );
}

/// A kickstart repository outside the declared mirrors is refused: kiln
/// cannot tell it will answer.
#[test]
fn a_repository_outside_the_declared_sources_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "sites/lab/site.yaml",
            "      installTree: http://mirror.lab.example.net/rhel/9.4/x86_64/dvd\n",
            "      installTree: http://mirror.lab.example.net/rhel/9.4/x86_64/dvd\n      \
             extraRepos: [{name: epel, baseurl: 'https://dl.fedoraproject.org/pub/epel/9/Everything/x86_64'}]\n",
        )
    });
    assert!(
        err.contains("blueprints/rhel9/templates/ks.cfg.j2:12:")
            && err.contains("https://dl.fedoraproject.org/pub/epel/9/Everything/x86_64")
            && err.contains("spec.installSources"),
        "{err}"
    );
}

/// A template that hands Windows Setup a directory is refused.
#[test]
fn a_windows_image_directory_in_a_template_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "blueprints/windows2022/templates/autounattend.xml.j2",
            "<Path>{{ win.installImage }}</Path>",
            r"<Path>\\fileserver.lab.example.net\install\win2022</Path>",
        )
    });
    assert!(
        err.contains("blueprints/windows2022/templates/autounattend.xml.j2:")
            && err.contains("`.wim` or `.esd`, not a directory"),
        "{err}"
    );
}

/// An install file served under another name than the step's answers 404.
#[test]
fn a_wrong_install_file_name_is_refused() {
    let err = render_fails(|r| {
        edit(
            r,
            "blueprints/rhel9/templates/boot.ipxe.j2",
            "inst.ks={{ install_url }}",
            "inst.ks={{ server }}/install/{{ token }}/kickstart.cfg",
        )
    });
    assert!(
        err.contains("blueprints/rhel9/templates/boot.ipxe.j2:11:")
            && err.contains("served as `ks.cfg`, not `kickstart.cfg`"),
        "{err}"
    );
}
