//! The iPXE builds a site hands to each firmware architecture. Each is an
//! artifact (path and SHA-256): the executor serves it over HTTP (UEFI
//! HTTP boot) and verifies it like every artifact, and the same path under
//! dnsmasq's TFTP root serves PXE (`boot/tftp.sha256` lists the layout).
//! An architecture without a build gets no boot file: its firmware moves
//! on to its next boot device instead of loading a binary it cannot run.

use crate::load::kinds::{Artifact, IpxeBuilds};
use crate::render::settings::Dhcp;
use crate::resolve::site::SiteModel;

/// A firmware architecture, as DHCP option 93 (RFC 4578, IANA "Processor
/// Architecture Types") names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Firmware {
    Bios,
    X64,
    Ia32,
    Arm64,
}

impl Firmware {
    pub(crate) const ALL: [Firmware; 4] = [Firmware::Bios, Firmware::X64, Firmware::Ia32, Firmware::Arm64];

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Firmware::Bios => "legacy BIOS",
            Firmware::X64 => "x64 UEFI",
            Firmware::Ia32 => "IA32 UEFI",
            Firmware::Arm64 => "ARM64 UEFI",
        }
    }

    /// The DHCP servers' class (tag) for its PXE clients.
    pub(super) fn tag(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::X64 => "efi-x64",
            Firmware::Ia32 => "efi-ia32",
            Firmware::Arm64 => "efi-arm64",
        }
    }

    /// Its PXE client architectures (option 93).
    pub(crate) fn pxe_arches(self) -> &'static [u16] {
        match self {
            Firmware::Bios => &[0],
            Firmware::X64 => &[7, 9],
            Firmware::Ia32 => &[6],
            Firmware::Arm64 => &[11],
        }
    }

    /// Its UEFI HTTP boot client architecture.
    pub(crate) fn http_arch(self) -> Option<u16> {
        match self {
            Firmware::Bios => None,
            Firmware::X64 => Some(16),
            Firmware::Ia32 => Some(15),
            Firmware::Arm64 => Some(19),
        }
    }

    fn of(builds: &IpxeBuilds, firmware: Firmware) -> Option<&Artifact> {
        match firmware {
            Firmware::Bios => builds.bios.as_ref(),
            Firmware::X64 => builds.x64.as_ref(),
            Firmware::Ia32 => builds.ia32.as_ref(),
            Firmware::Arm64 => builds.arm64.as_ref(),
        }
    }
}

/// One architecture's build.
#[derive(Clone, Debug)]
pub(crate) struct Build {
    pub firmware: Firmware,
    /// Under the artifacts directory, and under the TFTP root.
    pub path: String,
    pub sha256: String,
}

/// What a site gets without `spec.ipxe`: the builds of Debian 12's `ipxe`
/// package (1.0.0+git-20190125.36a4c85-5.1), which installs them under
/// `/usr/lib/ipxe/`. `snponly.efi` drives only the NIC the firmware booted
/// from, so a machine whose first NIC is not its provisioning NIC still
/// boots as itself.
const DEBIAN_12: [(Firmware, &str, &str); 2] = [
    (
        Firmware::Bios,
        "ipxe/undionly.kpxe",
        "f09cfbe9bbd39c3f5eb9cdf7386b520a4f5858bbc4438960c5b870c7a8930a7f",
    ),
    (
        Firmware::X64,
        "ipxe/snponly.efi",
        "18fc84b69172b9f7d1e6b5274c81121dde429fdacfdc984747f687cfb4f8090b",
    ),
];

/// The site's builds, one per architecture it boots.
pub(super) fn builds(site: &SiteModel) -> Vec<Build> {
    match &site.input.object.spec.ipxe {
        Some(builds) => Firmware::ALL
            .into_iter()
            .filter_map(|f| {
                Firmware::of(builds, f).map(|a| Build {
                    firmware: f,
                    path: a.path.clone(),
                    sha256: a.sha256.to_string(),
                })
            })
            .collect(),
        None => DEBIAN_12
            .into_iter()
            .map(|(firmware, path, sha256)| Build {
                firmware,
                path: path.into(),
                sha256: sha256.into(),
            })
            .collect(),
    }
}

/// A build and the URL UEFI HTTP boot fetches it from.
pub(crate) struct Served {
    pub build: Build,
    pub http_url: Option<String>,
}

/// Every build the site serves, with its HTTP boot URL (the x64 one may be
/// set by `values.dhcp.httpBootUrl`).
pub(crate) fn served(site: &SiteModel, dhcp: &Dhcp) -> Vec<Served> {
    let base = site.boot_server.trim_end_matches('/');
    builds(site)
        .into_iter()
        .map(|build| Served {
            http_url: build.firmware.http_arch().map(|_| match build.firmware {
                Firmware::X64 if !dhcp.http_boot_url.is_empty() => dhcp.http_boot_url.clone(),
                _ => format!("{base}/artifacts/{}", build.path),
            }),
            build,
        })
        .collect()
}

/// `boot/tftp.sha256`: the TFTP root's layout in `sha256sum` format, so
/// `sha256sum -c` run in the TFTP root checks it.
pub(super) fn tftp_list(builds: &[Build]) -> String {
    builds.iter().map(|b| format!("{}  {}\n", b.sha256, b.path)).collect()
}

/// Which architectures the site boots, as comment lines for the configs.
pub(super) fn support(served: &[Served]) -> String {
    let (yes, no): (Vec<Firmware>, Vec<Firmware>) = Firmware::ALL
        .into_iter()
        .partition(|f| served.iter().any(|s| s.build.firmware == *f));
    let names = |fs: &[Firmware]| fs.iter().map(|f| f.describe()).collect::<Vec<_>>().join(", ");
    let mut lines = format!("# This site boots {}.\n", names(&yes));
    if !no.is_empty() {
        lines.push_str(&format!("# No iPXE build, so no boot file, for {}.\n", names(&no)));
    }
    lines
}
