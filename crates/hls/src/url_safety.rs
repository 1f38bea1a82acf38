//! A user's URL is untrusted. Only `http` and `https`; addresses in loopback, private, link-local,
//! multicast and other special ranges are refused unless private networks are allowed. The check
//! runs on the address actually connected to: the HTTP client resolves names through
//! [`PublicAddressResolver`], which drops refused addresses, and URLs with an IP literal host are
//! checked before every request and on every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlSafetyError {
    #[error("{url:?} is not a valid URL: {reason}")]
    Malformed { url: String, reason: String },
    #[error("only http and https links can be recorded; {url:?} uses {scheme:?}")]
    SchemeNotAllowed { url: String, scheme: String },
    #[error("{url:?} points at a private or local address ({address}); this is refused for safety")]
    PrivateAddress { url: String, address: IpAddr },
    #[error("{host:?} resolves only to private or local addresses; this is refused for safety")]
    HostResolvesOnlyToPrivateAddresses { host: String },
    /// A redirect (3xx) whose `Location` is refused: another scheme (`file:`), a private
    /// address, or not a URL at all. Never retried as "HTTP 302".
    #[error("{url:?} redirects to a refused address {location:?}: {reason}")]
    RedirectRefused {
        url: String,
        location: String,
        reason: String,
    },
}

pub use streambot_core::url_redaction::{REDACTED, redact_url_text};

/// A URL as it may be written to the ledger, an event, a log or an error text: the userinfo
/// (`user:password@`) is removed and secret-looking query values are replaced; scheme, host,
/// port and path stay.
pub fn redact_url(url: &Url) -> String {
    redact_url_text(url.as_str())
}

/// Whether private networks may be reached (`ALLOW_PRIVATE_NETWORKS=true`, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkPolicy {
    pub allow_private_networks: bool,
}

impl NetworkPolicy {
    pub const PUBLIC_ONLY: NetworkPolicy = NetworkPolicy {
        allow_private_networks: false,
    };
    pub const ALLOW_PRIVATE: NetworkPolicy = NetworkPolicy {
        allow_private_networks: true,
    };

    pub fn permits_address(&self, address: IpAddr) -> bool {
        self.allow_private_networks || is_public_address(address)
    }
}

/// True for addresses on the public internet; false for loopback, private, link-local, multicast,
/// unspecified, documentation, benchmarking, shared (CGNAT) and reserved ranges.
pub fn is_public_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_ipv4(v4),
        IpAddr::V6(v6) => is_public_ipv6(v6),
    }
}

fn is_public_ipv4(address: Ipv4Addr) -> bool {
    let [first, second, third, _] = address.octets();
    let refused = address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_multicast()
        || address.is_broadcast()
        || address.is_unspecified()
        || address.is_documentation()
        || first == 0
        || first >= 240
        || (first == 100 && (64..=127).contains(&second))
        || (first == 192 && second == 0 && third == 0)
        || (first == 198 && (18..=19).contains(&second));
    !refused
}

fn is_public_ipv6(address: Ipv6Addr) -> bool {
    if let Some(mapped) = address.to_ipv4_mapped() {
        return is_public_ipv4(mapped);
    }
    let segments = address.segments();
    let refused = address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link local
        || (segments[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x0064 && segments[1] == 0xff9b) // NAT64 (96 and local-use /48)
        || segments[0] == 0x2002 // 6to4 can embed private v4
        || (segments[0] == 0x2001 && segments[1] == 0x0000) // Teredo embeds a v4 server
        || (segments[..4] == [0x0100, 0, 0, 0]) // discard-only
        // IPv4-compatible (::a.b.c.d, deprecated) and IPv4-translated (::ffff:0:a.b.c.d, SIIT):
        // both carry a v4 address a translator or an old stack may reach.
        || segments[..6] == [0; 6]
        || segments[..6] == [0, 0, 0, 0, 0xffff, 0];
    !refused
}

/// Checks the scheme and, for an IP literal host, the address. Names are checked at resolve time.
pub fn check_url(url: &Url, policy: NetworkPolicy) -> Result<(), UrlSafetyError> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(UrlSafetyError::SchemeNotAllowed {
                url: redact_url(url),
                scheme: other.to_string(),
            });
        }
    }
    match url.host() {
        None => Err(UrlSafetyError::Malformed {
            url: redact_url(url),
            reason: "it has no host".to_string(),
        }),
        Some(url::Host::Ipv4(v4)) => check_address(url, IpAddr::V4(v4), policy),
        Some(url::Host::Ipv6(v6)) => check_address(url, IpAddr::V6(v6), policy),
        Some(url::Host::Domain(domain)) => {
            let lowered = domain.to_ascii_lowercase();
            if !policy.allow_private_networks
                && (lowered == "localhost" || lowered.ends_with(".localhost"))
            {
                return Err(UrlSafetyError::PrivateAddress {
                    url: redact_url(url),
                    address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                });
            }
            Ok(())
        }
    }
}

fn check_address(url: &Url, address: IpAddr, policy: NetworkPolicy) -> Result<(), UrlSafetyError> {
    if policy.permits_address(address) {
        Ok(())
    } else {
        Err(UrlSafetyError::PrivateAddress {
            url: redact_url(url),
            address,
        })
    }
}

/// Parses a user's text as a URL and checks it.
pub fn parse_and_check_url(text: &str, policy: NetworkPolicy) -> Result<Url, UrlSafetyError> {
    let url = Url::parse(text.trim()).map_err(|error| UrlSafetyError::Malformed {
        url: redact_url_text(text),
        reason: error.to_string(),
    })?;
    check_url(&url, policy)?;
    Ok(url)
}

/// For tools that connect by themselves (the ffmpeg engine): checks the URL and that its host
/// resolves only to permitted addresses. The tool resolves again when it connects, so this is
/// weaker than the resolver the native fetcher uses; it is the best that can be done from outside.
pub async fn check_url_and_resolved_addresses(
    url: &Url,
    policy: NetworkPolicy,
) -> Result<(), UrlSafetyError> {
    check_url(url, policy)?;
    if policy.allow_private_networks {
        return Ok(());
    }
    let Some(url::Host::Domain(domain)) = url.host() else {
        return Ok(());
    };
    let host = domain.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let lookup_host = host.clone();
    let addresses: Vec<SocketAddr> = tokio::task::spawn_blocking(move || {
        (lookup_host.as_str(), port)
            .to_socket_addrs()
            .map(|iterator| iterator.collect::<Vec<_>>())
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    if addresses.is_empty() {
        return Err(UrlSafetyError::Malformed {
            url: redact_url(url),
            reason: format!("the host {host:?} could not be resolved"),
        });
    }
    if let Some(refused) = addresses
        .iter()
        .find(|address| !policy.permits_address(address.ip()))
    {
        return Err(UrlSafetyError::PrivateAddress {
            url: redact_url(url),
            address: refused.ip(),
        });
    }
    Ok(())
}

/// DNS resolution that only ever yields permitted addresses, so the connector cannot reach a
/// refused one whatever the name resolves to at connect time (DNS rebinding included).
#[derive(Debug, Clone)]
pub struct PublicAddressResolver {
    pub policy: NetworkPolicy,
}

impl reqwest::dns::Resolve for PublicAddressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let lookup_host = host.clone();
            let addresses: Vec<SocketAddr> = tokio::task::spawn_blocking(move || {
                (lookup_host.as_str(), 0)
                    .to_socket_addrs()
                    .map(|iterator| iterator.collect::<Vec<_>>())
            })
            .await
            .map_err(|join_error| Box::new(join_error) as Box<dyn std::error::Error + Send + Sync>)?
            .map_err(|io_error| Box::new(io_error) as Box<dyn std::error::Error + Send + Sync>)?;
            let permitted: Vec<SocketAddr> = addresses
                .into_iter()
                .filter(|address| policy.permits_address(address.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(
                    Box::new(UrlSafetyError::HostResolvesOnlyToPrivateAddresses { host })
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            let addresses: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addresses)
        })
    }
}

/// A redirect policy that re-checks every hop and bounds their number.
pub fn redirect_policy(
    policy: NetworkPolicy,
    maximum_redirects: usize,
) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= maximum_redirects {
            let message = format!("more than {maximum_redirects} redirects");
            return attempt.error(message);
        }
        match check_url(attempt.url(), policy) {
            Ok(()) => attempt.follow(),
            Err(error) => {
                let from = attempt
                    .previous()
                    .last()
                    .map(redact_url)
                    .unwrap_or_default();
                let refusal = UrlSafetyError::RedirectRefused {
                    url: from,
                    location: redact_url(attempt.url()),
                    reason: error.to_string(),
                };
                attempt.error(refusal)
            }
        }
    })
}

/// The resolver as the client builder takes it.
pub fn resolver_for(policy: NetworkPolicy) -> Arc<PublicAddressResolver> {
    Arc::new(PublicAddressResolver { policy })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_ranges_are_refused() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::",
            // Issue 11, round 2: v6 spellings that carry a private v4 address.
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2002:7f00:1::1",
            "100::1",
        ] {
            let address: IpAddr = text.parse().expect("test address");
            assert!(!is_public_address(address), "{text} should be refused");
        }
        for text in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "151.101.1.1"] {
            let address: IpAddr = text.parse().expect("test address");
            assert!(is_public_address(address), "{text} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_addresses() {
        let public = NetworkPolicy::PUBLIC_ONLY;
        assert!(parse_and_check_url("https://example.com/live.m3u8", public).is_ok());
        assert!(matches!(
            parse_and_check_url("file:///etc/passwd", public),
            Err(UrlSafetyError::SchemeNotAllowed { .. })
        ));
        assert!(matches!(
            parse_and_check_url("ftp://example.com/x.m3u8", public),
            Err(UrlSafetyError::SchemeNotAllowed { .. })
        ));
        assert!(matches!(
            parse_and_check_url("http://127.0.0.1:8080/live.m3u8", public),
            Err(UrlSafetyError::PrivateAddress { .. })
        ));
        assert!(matches!(
            parse_and_check_url("http://[::1]/live.m3u8", public),
            Err(UrlSafetyError::PrivateAddress { .. })
        ));
        assert!(matches!(
            parse_and_check_url("http://localhost/live.m3u8", public),
            Err(UrlSafetyError::PrivateAddress { .. })
        ));
        assert!(matches!(
            parse_and_check_url("not a url", public),
            Err(UrlSafetyError::Malformed { .. })
        ));
        assert!(
            parse_and_check_url(
                "http://127.0.0.1:8080/live.m3u8",
                NetworkPolicy::ALLOW_PRIVATE
            )
            .is_ok()
        );
    }

    #[test]
    fn redaction_removes_userinfo_and_query_secrets_and_keeps_host_and_path() {
        let url = Url::parse("https://user:hunter2@cdn.example:8443/live/seg-1.ts?token=abc&q=hd")
            .expect("url");
        assert_eq!(
            redact_url(&url),
            "https://cdn.example:8443/live/seg-1.ts?token=REDACTED&q=hd"
        );
        for (text, expected) in [
            ("//u:p@host/x.ts", "//host/x.ts"),
            (
                "seg.ts?Signature=s1&Key-Pair-Id=k&x=1",
                "seg.ts?Signature=REDACTED&Key-Pair-Id=REDACTED&x=1",
            ),
            ("http://only-user@host/a", "http://host/a"),
            ("plain/relative.ts", "plain/relative.ts"),
            (
                "could not reach http://a:b@h/p?password=z then https://c:d@i/q",
                "could not reach http://h/p?password=REDACTED then https://i/q",
            ),
        ] {
            assert_eq!(redact_url_text(text), expected, "{text}");
        }
        // Errors about a URL never carry its password.
        let refused =
            parse_and_check_url("file://u:hunter2@x/etc/passwd", NetworkPolicy::PUBLIC_ONLY)
                .expect_err("file is refused");
        assert!(!refused.to_string().contains("hunter2"), "{refused}");
        let malformed = parse_and_check_url("http://u:hunter2@[bad", NetworkPolicy::PUBLIC_ONLY)
            .expect_err("malformed");
        assert!(!malformed.to_string().contains("hunter2"), "{malformed}");
    }

    #[test]
    fn a_capitalised_scheme_is_http() {
        let policy = NetworkPolicy::ALLOW_PRIVATE;
        for text in [
            "Http://127.0.0.1/live.m3u8",
            "HTTPS://example.com/live.m3u8",
            "hTtP://example.com/live.m3u8",
        ] {
            let url = parse_and_check_url(text, policy).expect("accepted");
            assert!(matches!(url.scheme(), "http" | "https"), "{text}");
        }
        let base = Url::parse("https://example.com/live/media.m3u8").expect("url");
        let joined = base
            .join("HTTPS://cdn.example.com/seg.ts")
            .expect("absolute URI");
        assert!(check_url(&joined, policy).is_ok());
    }
}
