//! IPv4 networks as the site model uses them (MAC addresses are
//! `kiln_plan::Mac`).

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 network: its network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn parse(text: &str) -> Result<Ipv4Net, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not an IPv4 network in CIDR notation (e.g. 10.20.0.0/16)"))?;
        let addr = parse_ip(addr)?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`{text}` has an invalid prefix length (0-32)"))?;
        let net = Ipv4Net { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            let base = Ipv4Addr::from(u32::from(addr) & net.mask());
            return Err(format!("`{text}` has host bits set; did you mean {base}/{prefix}?"));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether `ip` can be given to a host: inside, and neither the network
    /// nor the broadcast address (for prefixes that have them).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.addr && ip != self.broadcast()))
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

pub fn parse_ip(text: &str) -> Result<Ipv4Addr, String> {
    text.parse().map_err(|_| format!("`{text}` is not an IPv4 address"))
}

/// An inclusive range of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

/// The host of a `scheme://host[:port]/...` URL, if it names one.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

impl IpRange {
    /// `START-END`, a CIDR network, or one address, as a range.
    pub fn parse_any(text: &str) -> Option<IpRange> {
        if let Some((a, b)) = text.split_once('-') {
            return Some(IpRange {
                start: parse_ip(a).ok()?,
                end: parse_ip(b).ok()?,
            });
        }
        if let Ok(net) = Ipv4Net::parse(text) {
            return Some(IpRange {
                start: net.addr,
                end: net.broadcast(),
            });
        }
        let ip = parse_ip(text).ok()?;
        Some(IpRange { start: ip, end: ip })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.start)..=u32::from(self.end)).map(Ipv4Addr::from)
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

    #[test]
    fn networks() {
        let n = Ipv4Net::parse("10.20.0.0/16").unwrap();
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert!(n.is_host("10.20.1.1".parse().unwrap()));
        assert!(!n.is_host("10.20.255.255".parse().unwrap()));
        assert!(Ipv4Net::parse("10.20.0.1/16")
            .unwrap_err()
            .contains("did you mean 10.20.0.0/16"));
        assert!(n.overlaps(&Ipv4Net::parse("10.20.4.0/24").unwrap()));
    }
}
