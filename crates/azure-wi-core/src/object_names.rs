//! The shapes of Kubernetes names the webhook reads from a review before the API server has
//! validated the pod (mutating admission runs first): a namespace is a DNS label, a
//! ServiceAccount name a DNS subdomain. A name of another shape did not come from a working
//! cluster; it is denied before it is looked up, logged or used as a metric label.

/// Whether `name` is a DNS-1123 label (a namespace): 1 to 63 of `a-z 0-9 -`, alphanumeric at
/// both ends.
pub fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS-1123 subdomain (a ServiceAccount name): at most 253 characters,
/// dot-separated DNS labels.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules() {
        for ok in ["default", "team-a", "a", "kube-system", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        assert!(is_dns_subdomain("sa.with.dots"));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        for bad in ["", ".a", "a..b", "Upper", &format!("{}.b", "a".repeat(250))] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
