//! The harness's own child processes (`agents-worker`, `embedded-broker`: this
//! executable with a hidden subcommand) and the line protocol between them: the parent
//! writes `stats` on the child's stdin and reads one JSON line back; `quit`, or a closed
//! stdin, ends the child. [`LineChild`] is the parent's side, [`serve_stats`] the
//! child's.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::BenchError;

/// How long a child may take to exit after `quit` before it is killed.
const QUIT_LIMIT: Duration = Duration::from_secs(10);

/// A child process of this executable, spoken to by lines.
pub struct LineChild {
    /// What it is, in error messages (`worker`, `broker`).
    what: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl LineChild {
    /// Starts this executable with `args` (a subcommand first); its stderr is ours; it is
    /// killed when dropped.
    pub fn spawn(what: &'static str, args: &[String]) -> Result<LineChild, BenchError> {
        let exe = std::env::current_exe().map_err(BenchError::io("current exe"))?;
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(BenchError::io(format!("cannot start the {what} process")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| BenchError::Setup(format!("{what} stdin")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup(format!("{what} stdout")))?;
        Ok(LineChild {
            what,
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        })
    }

    /// Its process id (until it is reaped).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next line it writes, within `limit`.
    pub async fn read_line(&mut self, limit: Duration) -> Result<String, BenchError> {
        let what = self.what;
        tokio::time::timeout(limit, self.stdout.next_line())
            .await
            .map_err(|_| BenchError::Timeout(format!("{what}: no answer within {limit:?}")))?
            .map_err(BenchError::io(format!("{what} stdout")))?
            .ok_or_else(|| BenchError::Setup(format!("{what} exited")))
    }

    /// Asks for its counters: `stats`, answered by one JSON line within `limit`.
    pub async fn stats(&mut self, limit: Duration) -> Result<Value, BenchError> {
        self.stdin
            .write_all(b"stats\n")
            .await
            .map_err(BenchError::io(format!("{} stdin", self.what)))?;
        let line = self.read_line(limit).await?;
        serde_json::from_str(&line)
            .map_err(|e| BenchError::Setup(format!("bad {} stats {line:?}: {e}", self.what)))
    }

    /// Sends it SIGKILL (`kill -9`: no goodbye on any of its connections).
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// Asks it to quit and waits (bounded) for it to exit; kills it otherwise.
    pub async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        drop(self.stdin);
        if tokio::time::timeout(QUIT_LIMIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The child's side: answers every `stats` line on stdin with `stats()` as one JSON line
/// on stdout, until `quit`, a closed stdin or a closed stdout.
pub async fn serve_stats(mut stats: impl FnMut() -> Value) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "stats" => {
                let line = format!("{}\n", stats());
                if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    break;
                }
            }
            "quit" => break,
            _ => {}
        }
    }
}
