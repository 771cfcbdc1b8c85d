//! IP networks and address ranges of either family, as the site model uses
//! them (MAC addresses are `kiln_plan::Mac`). Both families share one
//! arithmetic: an address is its bits in a `u128` and its family.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn width(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn address(self, bits: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
        }
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An IP network: its network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a network in CIDR notation (e.g. 10.20.0.0/16 or fd00:20::/64)"))?;
        let addr = parse_ip(addr)?;
        let width = Family::of(addr).width();
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= width)
            .ok_or_else(|| format!("`{text}` has an invalid prefix length (0-{width})"))?;
        let net = IpNet { addr, prefix };
        if bits(addr) & !net.mask() != 0 {
            let base = net.family().address(bits(addr) & net.mask());
            return Err(format!("`{text}` has host bits set; did you mean {base}/{prefix}?"));
        }
        Ok(net)
    }

    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// The network bits, within the family's width.
    fn mask(&self) -> u128 {
        let width = self.family().width();
        let all = u128::MAX >> (128 - u32::from(width));
        if self.prefix == 0 {
            0
        } else {
            all & (all << (width - self.prefix))
        }
    }

    pub fn netmask(&self) -> IpAddr {
        self.family().address(self.mask())
    }

    /// The last address (an IPv4 network's broadcast address).
    pub fn last(&self) -> IpAddr {
        let width = self.family().width();
        let all = u128::MAX >> (128 - u32::from(width));
        self.family().address(bits(self.addr) | (all & !self.mask()))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family() && bits(ip) & self.mask() == bits(self.addr)
    }

    /// Whether `ip` can be given to a host: inside, and not the network
    /// address (IPv6's subnet-router anycast) or IPv4's broadcast address,
    /// for prefixes that have them.
    pub fn is_host(&self, ip: IpAddr) -> bool {
        let point_to_point = self.prefix + 1 >= self.family().width();
        let special = ip == self.addr || (self.family() == Family::V4 && ip == self.last());
        self.contains(ip) && (point_to_point || !special)
    }

    pub fn overlaps(&self, other: &IpNet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The range of every address of the network.
    pub fn range(&self) -> IpRange {
        IpRange {
            start: self.addr,
            end: self.last(),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse().map_err(|_| format!("`{text}` is not an IP address"))
}

/// An inclusive range of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

/// The host of a `scheme://host[:port]/...` URL, if it names one; an IPv6
/// literal without its brackets.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

impl IpRange {
    /// `START-END`, a CIDR network, or one address, as a range.
    pub fn parse_any(text: &str) -> Option<IpRange> {
        if let Ok(net) = IpNet::parse(text) {
            return Some(net.range());
        }
        if let Ok(ip) = parse_ip(text) {
            return Some(IpRange { start: ip, end: ip });
        }
        let (a, b) = text.split_once('-')?;
        let (start, end) = (parse_ip(a).ok()?, parse_ip(b).ok()?);
        (Family::of(start) == Family::of(end)).then_some(IpRange { start, end })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == Family::of(self.start) && self.start <= ip && ip <= self.end
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        Family::of(self.start) == Family::of(other.start) && self.start <= other.end && other.start <= self.end
    }

    /// Every address, in order (lazily: an IPv6 range may be vast).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        let family = Family::of(self.start);
        (bits(self.start)..=bits(self.end)).map(move |b| family.address(b))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks() {
        let n = IpNet::parse("10.20.0.0/16").unwrap();
        assert_eq!(n.netmask(), ip("255.255.0.0"));
        assert!(n.is_host(ip("10.20.1.1")));
        assert!(!n.is_host(ip("10.20.255.255")));
        assert!(!n.contains(ip("fd00::1")));
        assert!(IpNet::parse("10.20.0.1/16")
            .unwrap_err()
            .contains("did you mean 10.20.0.0/16"));
        assert!(n.overlaps(&IpNet::parse("10.20.4.0/24").unwrap()));
    }

    #[test]
    fn ipv6_networks() {
        let n = IpNet::parse("fd00:20::/64").unwrap();
        assert_eq!(n.family(), Family::V6);
        assert_eq!(n.last(), ip("fd00:20::ffff:ffff:ffff:ffff"));
        assert!(!n.is_host(ip("fd00:20::")), "the subnet-router anycast address");
        assert!(n.is_host(ip("fd00:20::ffff:ffff:ffff:ffff")), "IPv6 has no broadcast");
        assert!(!n.contains(ip("fd00:21::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        assert!(IpNet::parse("fd00:20::1/64")
            .unwrap_err()
            .contains("did you mean fd00:20::/64"));
        assert!(IpNet::parse("fd00::/129").unwrap_err().contains("0-128"));
        let r = IpRange::parse_any("fd00:20::fffe-fd00:20::1:1").unwrap();
        let all: Vec<String> = r.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["fd00:20::fffe", "fd00:20::ffff", "fd00:20::1:0", "fd00:20::1:1"]);
        assert!(IpRange::parse_any("10.0.0.1-fd00::1").is_none());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://[fd00:20::2]:8080/x"), Some("fd00:20::2"));
        assert_eq!(url_host("http://[fd00:20::2]/"), Some("fd00:20::2"));
        assert_eq!(url_host("http://10.0.0.1:8080"), Some("10.0.0.1"));
        assert_eq!(url_host("https://boot.example.net/"), Some("boot.example.net"));
    }
}
