//! The headless Service's names: a dnsmasq the test controls, answering on
//! the pods' bridge from a hosts file the test rewrites.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Dns {
    child: Option<Child>,
    hosts_file: PathBuf,
}

impl Dns {
    /// Starts dnsmasq on `listen`, with its files in `dir`.
    pub fn start(dir: &Path, listen: &str) -> Dns {
        let hosts_file = dir.join("dns-hosts");
        fs::write(&hosts_file, "").unwrap();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--user=root",
                "--local-ttl=0",
                "--local=/cluster.local/",
            ])
            .arg(format!("--listen-address={listen}"))
            .arg(format!("--addn-hosts={}", hosts_file.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .arg(format!(
                "--log-facility={}",
                dir.join("dnsmasq.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        Dns {
            child: Some(child),
            hosts_file,
        }
    }

    /// Publishes `hosts` (lines of `ip name`) in place of what was there.
    pub fn publish(&self, hosts: &str) {
        fs::write(&self.hosts_file, hosts).unwrap();
        if let Some(d) = &self.child {
            let _ = Command::new("kill")
                .args(["-HUP", &d.id().to_string()])
                .status();
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    pub fn stop(&mut self) {
        if let Some(mut d) = self.child.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}
