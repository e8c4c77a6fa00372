//! What the container check knows of a container, as the Datadog agent would: its tags
//! ([`container_tags`]: `container_name`, `container_id`, the image tags, the compose
//! labels as `compose_project`/`compose_service`, and unified service tagging from the
//! `com.datadoghq.tags.*` labels or the `DD_*` environment), and which container is the
//! agent's own ([`own_container_id`]), so that it can watch its own compose project.

use std::collections::HashMap;

/// The compose project label.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The compose service label.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Unified service tagging: label, then environment variable, and the tag each gives.
const STANDARD: [(&str, &str, &str); 3] = [
    ("com.datadoghq.tags.env", "DD_ENV", "env"),
    ("com.datadoghq.tags.service", "DD_SERVICE", "service"),
    ("com.datadoghq.tags.version", "DD_VERSION", "version"),
];

/// What [`container_tags`] needs of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name, without the leading `/`.
    pub name: String,
    /// The image as asked for (`Config.Image`), e.g. `tinyfish:local`.
    pub image: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
}

/// The image tags of the Datadog agent: `image_name` (repository, registry included),
/// `short_image` (its last path part), `image_tag` (`latest` when none) and
/// `docker_image` (name:tag). An image id (`sha256:…`) gives only `docker_image`.
pub fn image_tags(image: &str) -> Vec<String> {
    if image.is_empty() {
        return Vec::new();
    }
    if image.starts_with("sha256:") {
        return vec![format!("docker_image:{image}")];
    }
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match without_digest[last_slash..].rfind(':') {
        Some(i) => (
            &without_digest[..last_slash + i],
            &without_digest[last_slash + i + 1..],
        ),
        None => (without_digest, ""),
    };
    let tag = if tag.is_empty() && !image.contains('@') {
        "latest"
    } else {
        tag
    };
    let short = &name[name.rfind('/').map_or(0, |i| i + 1)..];
    let mut tags = vec![
        format!("image_name:{name}"),
        format!("short_image:{short}"),
        format!(
            "docker_image:{name}{}{tag}",
            if tag.is_empty() { "" } else { ":" }
        ),
    ];
    if !tag.is_empty() {
        tags.push(format!("image_tag:{tag}"));
    }
    tags
}

/// A container's tags, as the Datadog agent tags its metrics (see the module docs).
pub fn container_tags(c: &ContainerInfo) -> Vec<String> {
    let mut tags = vec![
        format!("container_name:{}", c.name),
        format!("container_id:{}", c.id),
    ];
    tags.extend(image_tags(&c.image));
    for (label, tag) in [
        (PROJECT_LABEL, "compose_project"),
        (SERVICE_LABEL, "compose_service"),
    ] {
        if let Some(v) = c.labels.get(label).filter(|v| !v.is_empty()) {
            tags.push(format!("{tag}:{v}"));
        }
    }
    for (label, var, tag) in STANDARD {
        let from_env = || {
            c.env
                .iter()
                .find_map(|e| e.strip_prefix(var)?.strip_prefix('='))
        };
        if let Some(v) = c
            .labels
            .get(label)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .or_else(from_env)
            .filter(|v| !v.is_empty())
        {
            tags.push(format!("{tag}:{v}"));
        }
    }
    tags.retain(|t| !t.ends_with(':'));
    tags
}

/// The id of the container this process runs in, from `/proc/self/mountinfo` (the
/// engine bind-mounts `/var/lib/docker/containers/ID/hostname` on `/etc/hostname`)
/// or `/proc/self/cgroup` (cgroup v1: `…/docker/ID`). `None` on a host.
pub fn own_container_id(mountinfo: &str, cgroup: &str) -> Option<String> {
    let id_after = |s: &str, marker: &str| -> Option<String> {
        let rest = &s[s.find(marker)? + marker.len()..];
        let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        (id.len() == 64).then_some(id)
    };
    mountinfo
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (root, mount_point) = (f.get(3)?, f.get(4)?);
            matches!(
                *mount_point,
                "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"
            )
            .then(|| id_after(root, "/containers/"))
            .flatten()
        })
        .or_else(|| {
            cgroup
                .lines()
                .find_map(|l| id_after(l, "/docker/").or_else(|| id_after(l, "/docker-")))
        })
}

/// The `container_id` tag's value (empty when there is none).
pub fn container_id(tags: &[String]) -> &str {
    tags.iter()
        .find_map(|t| t.strip_prefix("container_id:"))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_as_the_datadog_agent_makes_them() {
        assert_eq!(
            image_tags("tinyfish:local"),
            [
                "image_name:tinyfish",
                "short_image:tinyfish",
                "docker_image:tinyfish:local",
                "image_tag:local"
            ]
        );
        assert_eq!(
            image_tags("gcr.io/datadoghq/agent:7"),
            [
                "image_name:gcr.io/datadoghq/agent",
                "short_image:agent",
                "docker_image:gcr.io/datadoghq/agent:7",
                "image_tag:7"
            ]
        );
        assert_eq!(
            image_tags("localhost:5000/team/app"),
            [
                "image_name:localhost:5000/team/app",
                "short_image:app",
                "docker_image:localhost:5000/team/app:latest",
                "image_tag:latest"
            ]
        );
        assert_eq!(
            image_tags("nginx@sha256:abcd"),
            [
                "image_name:nginx",
                "short_image:nginx",
                "docker_image:nginx"
            ]
        );
        assert_eq!(image_tags("sha256:abcd"), ["docker_image:sha256:abcd"]);
        assert!(image_tags("").is_empty());
    }

    #[test]
    fn container_tags_take_unified_tags_from_labels_then_env() {
        let c = ContainerInfo {
            id: "a".repeat(64),
            name: "shop-app-1".into(),
            image: "tinyfish:local".into(),
            labels: HashMap::from([
                (PROJECT_LABEL.to_owned(), "shop".to_owned()),
                (SERVICE_LABEL.to_owned(), "app".to_owned()),
                (
                    "com.datadoghq.tags.service".to_owned(),
                    "tinyfish-app".to_owned(),
                ),
                ("com.datadoghq.tags.env".to_owned(), String::new()),
            ]),
            env: vec![
                "DD_ENV=local".into(),
                "DD_SERVICE=other".into(),
                "DD_VERSIONX=9".into(),
            ],
        };
        let tags = container_tags(&c);
        for want in [
            "container_name:shop-app-1",
            &format!("container_id:{}", "a".repeat(64)),
            "short_image:tinyfish",
            "compose_project:shop",
            "compose_service:app",
            "service:tinyfish-app",
            "env:local",
        ] {
            assert!(tags.iter().any(|t| t == want), "{want} not in {tags:?}");
        }
        assert!(!tags.iter().any(|t| t.starts_with("version:")), "{tags:?}");
        assert!(!tags.iter().any(|t| t == "service:other"), "{tags:?}");
        assert_eq!(container_id(&tags), "a".repeat(64));
    }

    #[test]
    fn own_container_from_mountinfo_or_cgroup() {
        let id = "0123456789abcdef".repeat(4);
        let mountinfo = format!(
            "123 106 254:0 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(own_container_id(&mountinfo, "0::/\n"), Some(id.clone()));
        // On a host, other containers' mounts are elsewhere: not ours.
        let host =
            format!("200 25 0:50 / /var/lib/docker/containers/{id}/mounts/shm rw - tmpfs shm rw\n");
        assert_eq!(own_container_id(&host, "0::/\n"), None);
        assert_eq!(
            own_container_id("", &format!("4:memory:/docker/{id}\n")),
            Some(id.clone())
        );
        assert_eq!(
            own_container_id("", &format!("0::/system.slice/docker-{id}.scope\n")),
            Some(id)
        );
        assert_eq!(own_container_id("", "0::/user.slice\n"), None);
    }
}
