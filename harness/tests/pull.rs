//! `image pull` from a local docker-registry filled by skopeo, then `strata run` of it; push
//! with `latest` by default and cross-repository mounts; references without a transport.
#![allow(clippy::unwrap_used)]

#[path = "../../runtime/tests/image_util/mod.rs"]
mod image_util;

use std::path::Path;
use std::process::{Command, Output};

use image_util::{Registry, Umoci, run, tools};
use strata_runtime::sandbox;

fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(dir.join("root"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn fails(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(what), "{err:?} does not say {what:?}");
    err
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

#[test]
fn pull_from_a_registry_then_run_push_with_mounts_and_latest() {
    if !strata_runtime::require::root() || !tools(&["umoci", "skopeo", "docker-registry"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |args: &[&str]| strata(d, args);

    // An image with a config, made by umoci from a from-host rootfs, copied by skopeo into
    // a registry on 127.0.0.1.
    let rootfs = d.join("rootfs");
    ok(&s(&[
        "rootfs",
        "from-host",
        "--out",
        &rootfs.display().to_string(),
        "/bin/sh",
        "cat",
    ]));
    std::fs::create_dir(d.join("work")).unwrap();
    let u = Umoci::init(&d.join("layout"), &d.join("work"));
    u.layer("empty", "base", |r: &Path| {
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", rootfs.display()))
            .arg(r));
    });
    run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(u.image("base"))
        .args([
            "--tag",
            "v1",
            "--config.env",
            "WHO=pulled",
            "--config.cmd",
            "/bin/sh",
        ])
        .args(["--config.cmd", "-c", "--config.cmd", "echo hello from $WHO"]));
    let reg = Registry::start(d);
    let host = reg.host();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", u.image("v1")))
        .arg(format!("docker://{host}/src/app:v1")));

    // pull, then run it by the name it got: the image config applies.
    let p = json(&s(&[
        "--json",
        "image",
        "pull",
        &format!("docker://{host}/src/app:v1"),
    ]));
    let layers = p["layers"].as_array().unwrap().len();
    assert_eq!(p["blobs_fetched"].as_u64(), Some(layers as u64 + 1), "{p}");
    assert_eq!(p["name"], format!("{host}/src/app"));
    assert_eq!(p["tag"], "v1");
    let out = ok(&s(&["run", &format!("{host}/src/app:v1")]));
    assert_eq!(out, "hello from pulled");

    // Again, by digest, under another name: nothing fetched, everything shared.
    let digest = p["manifest"].as_str().unwrap().to_string();
    let again = json(&s(&[
        "--json",
        "image",
        "pull",
        "--name",
        "again:v1",
        &format!("docker://{host}/src/app@{digest}"),
    ]));
    assert_eq!(again["blobs_fetched"], 0, "{again}");
    assert_eq!(again["manifest"].as_str(), Some(digest.as_str()));
    assert_eq!(ok(&s(&["run", "again:v1"])), "hello from pulled");

    // push to another repository without a tag: `latest`, blobs mounted, not uploaded.
    let pushed = json(&s(&[
        "--json",
        "image",
        "push",
        "again:v1",
        &format!("docker://{host}/other/x"),
    ]));
    assert_eq!(pushed["dest"], format!("docker://{host}/other/x:latest"));
    assert_eq!(pushed["blobs_uploaded"], 0, "{pushed}");
    assert_eq!(
        pushed["blobs_mounted"].as_u64(),
        Some(layers as u64 + 1),
        "{pushed}"
    );
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/other/x:latest")));
    assert_eq!(
        strata_runtime::Digest::of(raw.as_bytes()).to_string(),
        digest
    );

    // A manifest list (OCI index): the entry for linux and this machine's architecture is
    // picked (the other entry, listed first, is the image without a Cmd).
    let arch = strata_runtime::image::oci::host_arch();
    let other = if arch == "s390x" { "ppc64le" } else { "s390x" };
    add_index(&u, "multi", &[("base", other), ("v1", arch)]);
    add_index(&u, "foreign", &[("base", other)]);
    for tag in ["multi", "foreign"] {
        run(Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--multi-arch",
                "all",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}", u.image(tag)))
            .arg(format!("docker://{host}/src/{tag}:v1")));
    }
    let m = json(&s(&[
        "--json",
        "image",
        "pull",
        &format!("docker://{host}/src/multi:v1"),
    ]));
    assert_eq!(m["platform"], format!("linux/{arch}"), "{m}");
    assert_eq!(m["manifest"].as_str(), Some(digest.as_str()), "{m}");
    assert_eq!(
        ok(&s(&["run", &format!("{host}/src/multi:v1")])),
        "hello from pulled"
    );
    fails(
        &s(&["image", "pull", &format!("docker://{host}/src/foreign:v1")]),
        &format!("no manifest for linux/{arch} (it has linux/{other})"),
    );

    // A blob the registry sends wrong is refused, naming the registry and the blob, and
    // the store stays as it was: here a manifest asked for by a digest it does not have.
    let wrong = format!("sha256:{}", "0".repeat(64));
    fails(
        &s(&["image", "pull", &format!("docker://{host}/src/app@{wrong}")]),
        &format!("docker://{host}/src/app@{wrong}"),
    );

    // A reference without a transport writes nothing here; errors name the registry.
    let before: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = fails(
        &s(&["image", "push", "again:v1", &format!("{host}/z:v1")]),
        "docker://",
    );
    assert!(err.contains("oci:DIR"), "{err}");
    let after: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    fails(
        &s(&["image", "pull", &format!("{host}/src/app:v1")]),
        "docker://HOST",
    );
    fails(
        &s(&["image", "push", "again:v1", "docker://127.0.0.1:1/x:y"]),
        "the registry 127.0.0.1:1",
    );
    // Another machine is reached over HTTPS: here one that does not exist.
    fails(
        &s(&["image", "pull", "docker://registry.example/x:y"]),
        "the registry registry.example (https://registry.example/v2/) cannot be reached",
    );
    fails(
        &s(&["run", &format!("{host}/src/nope:v1"), "--", "true"]),
        &format!("strata image pull docker://{host}/src/nope:v1"),
    );
}

/// Adds to the umoci layout an OCI index tagged `tag` whose entries are the manifests of the
/// layout's tags, each with the platform linux/ARCH given.
fn add_index(u: &Umoci, tag: &str, entries: &[(&str, &str)]) {
    let index_path = u.layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let by_tag = |t: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t)
            .unwrap()
            .clone()
    };
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(t, arch)| {
            let mut m = by_tag(t);
            m.as_object_mut().unwrap().remove("annotations");
            m["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            m
        })
        .collect();
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let d = strata_runtime::Digest::of(&nested);
    std::fs::write(u.layout.join("blobs/sha256").join(d.hex()), &nested).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d.to_string(),
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn b64(data: &[u8], url: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

/// A token service for a docker-registry with `auth: token`: it answers only requests
/// with the basic credentials `tester:secret` with a JWT (RS256, signed by `key.pem`, the
/// certificate in its x5c header) granting pull and push on every scope asked for.
fn token_service(dir: &Path) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, Write};
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=strata-test-issuer", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem")));
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap()
        .stdout;
    let x5c = b64(&der, false);
    let key = dir.join("key.pem");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    let want = format!("Basic {}", b64(b"tester:secret", false));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                    && v.trim() == want
                {
                    authorized = true;
                }
            }
            if !authorized {
                let _ = conn.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let access: Vec<serde_json::Value> = path
                .split(['?', '&'])
                .filter_map(|p| p.strip_prefix("scope="))
                .map(|s| s.replace("%3A", ":").replace("%2C", ","))
                .filter_map(|s| {
                    let mut f = s.split(':');
                    let (kind, name) = (f.next()?.to_string(), f.next()?.to_string());
                    Some(serde_json::json!({"type": kind, "name": name, "actions": ["pull", "push"]}))
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": "strata-test-issuer", "sub": "tester", "aud": "strata-test",
                "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("t{n}"),
                "access": access,
            });
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes(), true),
                b64(claims.to_string().as_bytes(), true)
            );
            let mut sign = Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            sign.stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let sig = sign.wait_with_output().unwrap().stdout;
            let body =
                serde_json::json!({"token": format!("{input}.{}", b64(&sig, true))}).to_string();
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, served)
}

#[test]
fn pull_and_push_with_bearer_tokens_from_docker_config_credentials() {
    if !strata_runtime::require::root() || !tools(&["umoci", "docker-registry", "openssl"]) {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (tport, served) = token_service(d);
    let reg = Registry::start_with(
        d,
        &format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: strata-test\n    issuer: strata-test-issuer\n    rootcertbundle: {}\n",
            d.join("cert.pem").display()
        ),
    );
    let host = reg.host();
    let s = |args: &[&str], config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(d.join("root"))
            .args(args)
            .env("DOCKER_CONFIG", config)
            .output()
            .unwrap()
    };
    // An image to push: umoci's, from a from-host rootfs.
    let rootfs = d.join("rootfs");
    let none = d.join("no-config");
    ok(&s(
        &[
            "rootfs",
            "from-host",
            "--out",
            &rootfs.display().to_string(),
            "/bin/sh",
        ],
        &none,
    ));
    std::fs::create_dir(d.join("work")).unwrap();
    let u = Umoci::init(&d.join("layout"), &d.join("work"));
    u.layer("empty", "v1", |r: &Path| {
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", rootfs.display()))
            .arg(r));
    });
    ok(&s(
        &["image", "import", &u.image("v1"), "--name", "app:v1"],
        &none,
    ));

    // Without credentials the token service refuses: the error says so.
    let dest = format!("docker://{host}/team/app:v1");
    fails(&s(&["image", "push", "app:v1", &dest], &none), "anonymous");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);

    // With them (docker config.json): push, then pull into a fresh name, then run it.
    let config = d.join("docker");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        serde_json::json!({"auths": {host.clone(): {"auth": b64(b"tester:secret", false)}}})
            .to_string(),
    )
    .unwrap();
    let pushed = json(&s(&["--json", "image", "push", "app:v1", &dest], &config));
    assert!(pushed["blobs_uploaded"].as_u64().unwrap() >= 2, "{pushed}");
    assert!(served.load(std::sync::atomic::Ordering::SeqCst) > 0);
    ok(&s(&["image", "rm", "app:v1"], &none));
    let pulled = json(&s(
        &["--json", "image", "pull", "--name", "back:v1", &dest],
        &config,
    ));
    assert_eq!(pulled["manifest"], pushed["manifest"]);
    let out = ok(&s(
        &[
            "run",
            "back:v1",
            "--",
            "/bin/sh",
            "-c",
            "echo authenticated",
        ],
        &none,
    ));
    assert_eq!(out, "authenticated");
}

/// `openssl` run in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA `NAME.pem` (key `NAME.key`) made in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=strata test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

#[test]
fn pull_and_push_over_https_trusting_a_ca_through_ssl_cert_file() {
    if !strata_runtime::require::root()
        || !tools(&["umoci", "docker-registry", "openssl", "skopeo"])
    {
        return;
    }
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A CA, a certificate it signs for 127.0.0.1, and another CA that signs nothing here.
    make_ca(d, "ca");
    make_ca(d, "other");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    std::fs::create_dir(d.join("reg")).unwrap();
    let reg = Registry::start_tls(&d.join("reg"), &d.join("server.pem"), &d.join("server.key"));
    let host = reg.host();
    let s = |args: &[&str], root: &str, ca: &str| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(d.join(root))
            .args(args)
            .env("SSL_CERT_FILE", d.join(ca))
            .env_remove("SSL_CERT_DIR")
            .env("DOCKER_CONFIG", d.join("no-docker-config"))
            .current_dir(d)
            .output()
            .unwrap()
    };

    // An image: one layer with a file, made by umoci.
    std::fs::create_dir(d.join("work")).unwrap();
    let u = Umoci::init(&d.join("layout"), &d.join("work"));
    u.layer("empty", "v1", |r: &Path| {
        image_util::write(&r.join("hello"), "over tls\n", 0o644);
    });
    ok(&s(
        &["image", "import", &u.image("v1"), "--name", "app:v1"],
        "root",
        "ca.pem",
    ));

    // Push over HTTPS (the registry speaks nothing else), the CA trusted by SSL_CERT_FILE.
    let dest = format!("docker://{host}/tls/app:v1");
    let pushed = json(&s(
        &["--json", "image", "push", "app:v1", &dest],
        "root",
        "ca.pem",
    ));
    assert_eq!(pushed["dest"], dest);
    assert!(pushed["blobs_uploaded"].as_u64().unwrap() >= 2, "{pushed}");
    // skopeo, verifying with the same CA, reads what strata pushed, digest for digest.
    std::fs::create_dir(d.join("certs.d")).unwrap();
    std::fs::copy(d.join("ca.pem"), d.join("certs.d/ca.crt")).unwrap();
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(d.join("certs.d"))
        .arg(&dest));
    assert_eq!(
        strata_runtime::Digest::of(raw.as_bytes()).to_string(),
        pushed["manifest"].as_str().unwrap()
    );

    // Pull into another store: the same manifest, the file in its layer.
    let pulled = json(&s(
        &["--json", "image", "pull", "--name", "back:v1", &dest],
        "root2",
        "ca.pem",
    ));
    assert_eq!(pulled["manifest"], pushed["manifest"]);
    assert_eq!(pulled["blobs_fetched"].as_u64(), Some(2), "{pulled}");
    let export = d.join("exported");
    ok(&s(
        &["image", "export", "back:v1", &export.display().to_string()],
        "root2",
        "ca.pem",
    ));

    // A CA the registry's certificate does not chain to: refused in one line naming the
    // registry and why, --insecure or not (certificates are always verified); nothing pulled.
    for extra in [&[][..], &["--insecure"][..]] {
        let mut args = vec!["image", "pull"];
        args.extend_from_slice(extra);
        args.push(&dest);
        let err = fails(
            &s(&args, "root3", "other.pem"),
            "not signed by a trusted CA",
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&dest) && err.contains(&format!("https://{host}/v2/")),
            "{err}"
        );
        assert!(err.contains("SSL_CERT_FILE"), "{err}");
    }
    let err = fails(
        &s(&["image", "push", "app:v1", &dest], "root", "other.pem"),
        "not signed by a trusted CA",
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let listed = ok(&s(&["image", "ls"], "root3", "other.pem"));
    assert!(!listed.contains("tls/app"), "{listed}");
}

/// A registry on another machine that speaks only plain HTTP: refused unless --insecure.
/// Another machine is played by an address of this one that is not loopback (skipped with a
/// printed reason when the machine has none).
#[test]
fn plain_http_off_this_machine_needs_insecure() {
    if !strata_runtime::require::root() || !tools(&["umoci", "docker-registry"]) {
        return;
    }
    // The address this machine would send from (nothing is sent: a UDP connect only routes).
    let ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|u| u.connect("192.0.2.1:9").map(|()| u))
        .and_then(|u| u.local_addr())
        .map(|a| a.ip());
    let ip = match ip {
        Ok(std::net::IpAddr::V4(ip)) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        other => {
            println!("skipped: this machine has no non-loopback IPv4 address ({other:?})");
            return;
        }
    };
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = Registry::start_on(d, &ip.to_string(), "");
    let host = reg.host();
    std::fs::create_dir(d.join("work")).unwrap();
    let u = Umoci::init(&d.join("layout"), &d.join("work"));
    u.layer("empty", "v1", |r: &Path| {
        image_util::write(&r.join("hello"), "plain\n", 0o644);
    });
    ok(&strata(
        d,
        &["image", "import", &u.image("v1"), "--name", "app:v1"],
    ));
    let dest = format!("docker://{host}/plain/app:v1");
    let err = fails(
        &strata(d, &["image", "push", "app:v1", &dest]),
        "does not speak TLS",
    );
    assert!(err.contains("--insecure") && err.contains(&dest), "{err}");
    let pushed = json(&strata(
        d,
        &["--json", "image", "push", "--insecure", "app:v1", &dest],
    ));
    assert!(pushed["blobs_uploaded"].as_u64().unwrap() >= 2, "{pushed}");
    fails(
        &strata(d, &["image", "pull", "--name", "back:v1", &dest]),
        "does not speak TLS",
    );
    let pulled = json(&strata(
        d,
        &[
            "--json",
            "image",
            "pull",
            "--insecure",
            "--name",
            "back:v1",
            &dest,
        ],
    ));
    assert_eq!(pulled["manifest"], pushed["manifest"]);
}
