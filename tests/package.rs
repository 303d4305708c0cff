//! The Debian package (issue 5): `cargo deb` packs this test run's binary, `dpkg -x` unpacks it
//! into a throwaway root, and its postinst runs in a private mount namespace (a copy of /etc, empty
//! /var/lib and /var/spool) where an uploader drops an article and siar, as the siar user, ingests
//! and publishes it. Needs cargo-deb (`.ci/run` installs it); the namespace part needs root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_siar");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

struct Package {
    _dir: TempDir,
    deb: PathBuf,
    /// `dpkg -x` of the package.
    root: PathBuf,
    /// `dpkg-deb -e`: control, conffiles, maintainer scripts.
    control: PathBuf,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package once per test binary; None (with the reason printed) when cargo-deb or dpkg
/// is missing.
fn package() -> Option<&'static Package> {
    static PACKAGE: OnceLock<Option<Package>> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            for (tool, args) in [("cargo", &["deb", "--version"][..]), ("dpkg-deb", &["--version"][..])] {
                if !Command::new(tool).args(args).output().is_ok_and(|o| o.status.success()) {
                    eprintln!(
                        "SKIPPED: `{tool} {}` does not run here; install cargo-deb with \
                         `cargo install cargo-deb --locked` (.ci/run does) and dpkg",
                        args.join(" ")
                    );
                    return None;
                }
            }
            let dir = tempfile::tempdir().expect("tempdir");
            // cargo-deb packs <target>/release/siar: point it at a target directory holding the
            // binary this test run built (no second build).
            let target = dir.path().join("target");
            fs::create_dir_all(target.join("release")).expect("target dir");
            fs::copy(BIN, target.join("release/siar")).expect("copy the binary");
            let out = dir.path().join("out");
            run(Command::new("cargo")
                .args(["deb", "--no-build", "--fast", "--quiet", "--output"])
                .arg(&out)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(REPO));
            let deb = fs::read_dir(&out)
                .expect("cargo deb output")
                .map(|e| e.expect("entry").path())
                .find(|p| p.extension().is_some_and(|x| x == "deb"))
                .expect("a .deb in cargo deb's output");
            let (root, control) = (dir.path().join("root"), dir.path().join("control"));
            run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
            run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
            // The namespace test runs the unpacked binary as the siar user.
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
            Some(Package { _dir: dir, deb, root, control })
        })
        .as_ref()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn debian_package_holds_the_binary_unit_and_config_and_enables_nothing() {
    let Some(pkg) = package() else { return };
    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(&pkg.deb).arg(name)).trim().to_string();
    assert_eq!(field("Package"), "siar");
    assert!(field("Depends").contains("adduser"), "postinst uses adduser: {}", field("Depends"));

    // The files, byte for byte from the tree.
    let bin = pkg.root.join("usr/bin/siar");
    assert_eq!(fs::metadata(&bin).expect("usr/bin/siar").permissions().mode() & 0o777, 0o755);
    let version = run(Command::new(&bin).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let unit = read(&pkg.root.join("usr/lib/systemd/system/siar.service"));
    assert_eq!(unit, read(&Path::new(REPO).join("systemd/siar.service")));
    // The daily export (backup) runs the same binary on the same config; shipped, not enabled.
    for name in ["siar-export.service", "siar-export.timer"] {
        let shipped = read(&pkg.root.join("usr/lib/systemd/system").join(name));
        assert_eq!(shipped, read(&Path::new(REPO).join("systemd").join(name)), "{name}");
    }
    let export = read(&pkg.root.join("usr/lib/systemd/system/siar-export.service"));
    assert!(
        export.contains("ExecStart=/usr/bin/siar --config /etc/siar/siar.toml export --output /var/lib/siar/backups/siar-export.jsonl.new")
    );
    let config = read(&pkg.root.join("etc/siar/siar.toml"));
    assert_eq!(config, read(&Path::new(REPO).join("systemd/siar.toml")));
    assert!(pkg.root.join("usr/share/doc/siar/README.md").is_file());
    let mut man = String::new();
    let gz = fs::File::open(pkg.root.join("usr/share/man/man1/siar.1.gz")).expect("the man page, gzipped");
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut man).expect("gunzip");
    assert_eq!(man, read(&Path::new(REPO).join("docs/siar.1")));
    // The unit runs what the package installs, on the config it installs.
    for line in unit.lines().filter(|l| l.starts_with("ExecStart") || l.starts_with("ExecReload=/usr")) {
        assert!(line.contains("/usr/bin/siar --config /etc/siar/siar.toml"), "{line}");
    }

    // The config is a conffile (an admin's edits survive upgrades).
    assert_eq!(read(&pkg.control.join("conffiles")).trim(), "/etc/siar/siar.toml");

    // It enables and starts nothing by itself: no wants/ links, no enable or start in its scripts.
    assert!(!pkg.root.join("etc/systemd").exists(), "the package ships links under /etc/systemd");
    for script in ["postinst", "prerm", "postrm"] {
        let path = pkg.control.join(script);
        assert_eq!(fs::metadata(&path).expect(script).permissions().mode() & 0o111, 0o111, "{script}");
        let text = read(&path);
        for word in ["enable", "systemctl start", "systemctl restart", "deb-systemd-invoke start"] {
            let hit = text.lines().filter(|l| !l.trim_start().starts_with('#')).any(|l| l.contains(word));
            assert!(!hit, "{script} runs {word:?}:\n{text}");
        }
    }
    assert!(!pkg.control.join("preinst").exists() || !read(&pkg.control.join("preinst")).contains("enable"));

    // The shipped system config is config/siar.toml with absolute paths (systemd/make-config).
    let made = run(Command::new("sh").arg(Path::new(REPO).join("systemd/make-config")));
    assert_eq!(made, config, "systemd/siar.toml is stale: run systemd/make-config > systemd/siar.toml");
    for line in
        ["drop = \"/var/spool/siar/drop\"", "state = \"/var/lib/siar/state\"", "output = \"/var/lib/siar/feeds\""]
    {
        assert!(config.lines().any(|l| l == line), "the system config lacks {line}");
    }
    // Until the administrator sets [site], the shipped config refuses to run (ids minted under
    // the example domain would be permanent), and says which key.
    let out = Command::new(&bin).arg("--config").arg(pkg.root.join("etc/siar/siar.toml")).arg("check").output();
    let out = out.expect("siar check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("title") || err.contains("link"), "{err}");
}

/// `man siar` stays in step with the binary: every command and option `--help` lists is in the
/// man page, and so is every exit code; groff renders it without a warning.
#[test]
fn the_man_page_covers_every_command_option_and_exit_code() {
    let page = read(&Path::new(REPO).join("docs/siar.1"));
    let help = |args: &[&str]| run(Command::new(BIN).args(args).arg("--help"));
    let commands = |text: &str| -> Vec<String> {
        let after = text.split("Commands:").nth(1).unwrap_or("");
        let block = after.split("\n\n").next().unwrap_or("");
        block.lines().filter_map(|l| l.split_whitespace().next()).filter(|c| *c != "help").map(String::from).collect()
    };
    let options = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .filter(|w| w.starts_with("--") && !["--help", "--version", "--config"].contains(w))
            .map(|w| w.trim_end_matches(',').to_string())
            .collect()
    };
    // In roff a dash is written \-.
    let in_page = |word: &str| page.contains(&word.replace('-', "\\-"));
    let mut seen = 0;
    for cmd in commands(&help(&[])) {
        assert!(in_page(&format!(".B {cmd}")) || in_page(&format!(" {cmd}")), "siar {cmd} is not in docs/siar.1");
        let text = help(&[&cmd]);
        for opt in options(&text) {
            assert!(in_page(&opt), "siar {cmd} {opt} is not in docs/siar.1");
            seen += 1;
        }
        for sub in commands(&text) {
            assert!(page.contains(&sub), "siar {cmd} {sub} is not in docs/siar.1");
        }
    }
    assert!(seen >= 4, "the help parsing found too little ({seen} options)");
    for code in ["0", "65", "66", "70", "73", "75", "78"] {
        assert!(page.contains(&format!(".B {code}\n")), "exit status {code} is not in docs/siar.1");
    }
    let out = Command::new("man").args(["--warnings=w", "-l"]).arg(Path::new(REPO).join("docs/siar.1")).output();
    match out {
        Ok(o) if o.status.success() => {
            assert!(o.stderr.is_empty(), "groff warns: {}", String::from_utf8_lossy(&o.stderr));
        }
        _ => eprintln!("SKIPPED: the man page's rendering check needs man (Debian's man-db)"),
    }
}

/// The postinst and the system layout, for real: in a private mount namespace over a copy of /etc.
#[test]
fn postinst_makes_a_layout_where_an_uploader_drops_and_siar_publishes() {
    let Some(pkg) = package() else { return };
    let skip = |why: &str| eprintln!("SKIPPED: the postinst test {why}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root (it runs adduser and chown inside a private mount namespace)");
    }
    for tool in ["unshare", "setpriv", "adduser", "useradd"] {
        if !Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success()) {
            return skip(&format!("needs {tool}"));
        }
    }
    if !Command::new("unshare").args(["--mount", "true"]).status().is_ok_and(|s| s.success()) {
        return skip("cannot make a mount namespace here (unshare --mount refused)");
    }
    let t = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = r#"
set -eu
T=$1; ROOT=$2; CONTROL=$3
# As dpkg runs maintainer scripts (deb-systemd-helper insists).
export DPKG_MAINTSCRIPT_PACKAGE=siar DPKG_MAINTSCRIPT_ARCH=amd64
mount --make-rprivate /
# No systemd here, even on a host that runs it: the scripts must not reach the host's PID 1.
if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi
cp -a /etc "$T/etc"
mount --bind "$T/etc" /etc
mkdir "$T/var-lib" "$T/var-spool"
mount --bind "$T/var-lib" /var/lib
mount --bind "$T/var-spool" /var/spool
rm -rf /etc/siar
cp -a "$ROOT/etc/siar" /etc/siar
# The administrator makes [site] theirs (the shipped file refuses to run until then).
sed -i -e 's|^# title = .*|title = "Warta Uji"|' -e 's|^# link = .*|link = "https://warta.example.net/"|' \
    /etc/siar/siar.toml
"$CONTROL/postinst" configure ""
# An upgrade runs it again: nothing changes, nothing fails.
"$CONTROL/postinst" configure 0.0.1-1
getent passwd siar | cut -d: -f1,6,7 > "$T/passwd"
id -nG siar > "$T/groups"
stat -c '%n %U:%G %a' /var/lib/siar /var/spool/siar /var/spool/siar/drop > "$T/stat"
# An uploader of the newsroom: member of siar-drop, writes under a temp name and renames.
useradd --no-create-home --groups siar-drop uploader
setpriv --reuid=uploader --regid=uploader --init-groups sh -c '
    umask 002
    printf "Title: Kabar dari paket\n\nJAKARTA - Berita yang diunggah ke folder drop.\n" > /var/spool/siar/drop/.kabar.tmp
    mv /var/spool/siar/drop/.kabar.tmp /var/spool/siar/drop/kabar.txt'
touch -d '1 minute ago' /var/spool/siar/drop/kabar.txt
# Another, handed in with `siar ingest` under a private umask: still readable by the group.
printf "Title: Kabar lewat siar ingest\n\nJAKARTA - Diserahkan dengan perintah siar ingest.\n" > "$T/serah.txt"
chmod 644 "$T/serah.txt"
touch -d '1 minute ago' "$T/serah.txt"
setpriv --reuid=uploader --regid=uploader --init-groups sh -c "umask 077
    '$ROOT/usr/bin/siar' --config /etc/siar/siar.toml ingest '$T/serah.txt'"
# siar as the unit runs it: the siar user, its groups, UMask=0027.
setpriv --reuid=siar --regid=siar --init-groups sh -c "umask 0027
    '$ROOT/usr/bin/siar' --config /etc/siar/siar.toml check >/dev/null
    exec '$ROOT/usr/bin/siar' --config /etc/siar/siar.toml run --once" 2> "$T/siar.log"
ls /var/spool/siar/drop/done > "$T/done"
cp /var/lib/siar/feeds/all.atom "$T/all.atom"
stat -c '%U:%G %a' /var/lib/siar/feeds/all.atom > "$T/feed-stat"
# An administrator enables the unit; remove masks it, purge takes the links and the mask away.
if command -v deb-systemd-helper >/dev/null; then
    mount --bind "$ROOT/usr/lib/systemd/system" /usr/lib/systemd/system
    "$CONTROL/postinst" configure 0.1.0-1
    # What `systemctl enable siar` does (systemd is not running here).
    wants=/etc/systemd/system/multi-user.target.wants/siar.service
    mkdir -p "$(dirname "$wants")"
    ln -s /usr/lib/systemd/system/siar.service "$wants"
    [ -L "$wants" ] && echo "enabled" >> "$T/lifecycle"
    "$CONTROL/prerm" remove
    "$CONTROL/postrm" remove
    [ -L /etc/systemd/system/siar.service ] && echo "masked" >> "$T/lifecycle"
    "$CONTROL/postrm" purge
    [ -e "$wants" ] || [ -L "$wants" ] || echo "no link after purge" >> "$T/lifecycle"
    [ -e /etc/systemd/system/siar.service ] || [ -L /etc/systemd/system/siar.service ] || echo "no mask after purge" >> "$T/lifecycle"
    [ -d /var/lib/siar/state ] && echo "store kept" >> "$T/lifecycle"
else
    echo "no deb-systemd-helper" > "$T/lifecycle"
fi
"#;
    let script_path = t.path().join("layout.sh");
    fs::write(&script_path, script).expect("script");
    let out = Command::new("unshare")
        .args(["--mount", "sh"])
        .arg(&script_path)
        .arg(t.path())
        .arg(&pkg.root)
        .arg(&pkg.control)
        .output()
        .expect("unshare");
    let log = fs::read_to_string(t.path().join("siar.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the layout script failed ({}):\n{}{}\nsiar's log:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let at = |f: &str| read(&t.path().join(f));
    assert_eq!(at("passwd").trim(), "siar:/var/lib/siar:/usr/sbin/nologin");
    let groups: Vec<String> = at("groups").split_whitespace().map(String::from).collect();
    assert!(groups.contains(&"siar".into()) && groups.contains(&"siar-drop".into()), "{groups:?}");
    assert_eq!(
        at("stat"),
        "/var/lib/siar siar:siar 750\n/var/spool/siar root:root 755\n/var/spool/siar/drop siar:siar-drop 3770\n"
    );
    assert_eq!(at("done"), "kabar.txt\nserah.txt\n", "the dropped files were not ingested; siar's log:\n{log}");
    assert!(at("all.atom").contains("Kabar dari paket"), "{}", at("all.atom"));
    assert!(at("all.atom").contains("Kabar lewat siar ingest"), "{}", at("all.atom"));
    // UMask=0027: the feeds are the siar group's to read (nginx joins it), nobody else's.
    assert_eq!(at("feed-stat").trim(), "siar:siar 640");
    if at("lifecycle").trim() == "no deb-systemd-helper" {
        eprintln!("SKIPPED: the enable/remove/purge part needs deb-systemd-helper (Debian's init-system-helpers)");
    } else {
        assert_eq!(at("lifecycle"), "enabled\nmasked\nno link after purge\nno mask after purge\nstore kept\n");
    }
}
