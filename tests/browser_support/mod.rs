//! Loading a page in headless Chromium and reading back the DOM its script
//! left, for the HTML tests of `check` and `diff`.

use std::path::Path;
use std::process::Command;

/// The DOM of `page` after its script ran, or `None` when Chromium is
/// missing and `PARITY_NO_BROWSER=1` says to skip (a missing browser is
/// otherwise a failure: `.ci/run` installs it).
pub fn dump_dom(page: &Path) -> Option<String> {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        if std::env::var("PARITY_NO_BROWSER").as_deref() == Ok("1") {
            println!("skipped: /usr/bin/chromium is missing and PARITY_NO_BROWSER=1");
            return None;
        }
        panic!("this test needs chromium: install it (apt-get install -y chromium), or set PARITY_NO_BROWSER=1 to skip it");
    }
    let profile = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dumped = scratch.path().join("dom.html");
    let mut child = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        // To a file, not a pipe: a DOM larger than the pipe's buffer would
        // block the browser while this waits for it to exit.
        .stdout(std::fs::File::create(&dumped).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A hung browser fails the test instead of hanging it.
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Some(std::fs::read_to_string(&dumped).unwrap())
}

/// The count of plots drawn with content that the page's script wrote into
/// `<body data-rendered="…">`; `None` when the script did not run.
pub fn rendered(dom: &str) -> Option<usize> {
    let body = &dom[dom.find("<body")?..];
    let tag = &body[..body.find('>')?];
    let at = tag.find("data-rendered=\"")? + "data-rendered=\"".len();
    tag[at..].split('"').next()?.parse().ok()
}
