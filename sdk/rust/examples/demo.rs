//! demo - an example Ember function in Rust (std only).
//!
//! Request: text. The handler splits it into lines, hands them to 4 worker
//! threads (std::thread) over a channel (std::sync::mpsc), each worker
//! counts the words of its lines and sends its counts back on another
//! channel; the handler joins the workers, merges the counts and answers
//! with the number of lines and words, the 5 most frequent words and a
//! checksum of all counts, e.g.
//!
//!   lines=3 words=12 distinct=8 workers=4 top=the:3,a:2,... sum=4f2a...
//!
//! The stop words come from a table built at initialisation (kept in the
//! snapshot). The answer depends only on the request, so the same binary
//! answers the same in Ember's micro guest and as a plain process
//! (tests/integration/micro-runtimes).
use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const WORKERS: usize = 4;

fn handle(stop: &HashSet<&'static str>, req: &ember::Request) -> Result<Vec<u8>, ember::Error> {
    let text = std::str::from_utf8(req.payload).map_err(|_| ember::Error::new("request is not UTF-8"))?;
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let (work_tx, work_rx) = mpsc::channel::<String>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (count_tx, count_rx) = mpsc::channel::<BTreeMap<String, u64>>();
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let rx = Arc::clone(&work_rx);
        let tx = count_tx.clone();
        let stop = stop.clone();
        let w = thread::Builder::new()
            .name(format!("worker-{}", i))
            .spawn(move || {
                let mut counts = BTreeMap::new();
                loop {
                    let line = match rx.lock().unwrap().recv() {
                        Ok(l) => l,
                        Err(_) => break, // the sender is gone: done
                    };
                    for w in line.split_whitespace() {
                        let w = w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
                        if !w.is_empty() && !stop.contains(w.as_str()) {
                            *counts.entry(w).or_insert(0u64) += 1;
                        }
                    }
                    thread::sleep(Duration::from_micros(200));
                }
                tx.send(counts).unwrap();
            })
            .map_err(|e| ember::Error::new(format!("thread: {}", e)))?;
        workers.push(w);
    }
    drop(count_tx);
    for l in &lines {
        work_tx.send(l.clone()).unwrap();
    }
    drop(work_tx);
    let mut joined = 0;
    for w in workers {
        if w.join().is_ok() {
            joined += 1;
        }
    }
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for counts in count_rx {
        for (w, n) in counts {
            *total.entry(w).or_insert(0) += n;
        }
    }
    let words: u64 = total.values().sum();
    let mut top: Vec<(&String, &u64)> = total.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = top.iter().take(5).map(|(w, n)| format!("{}:{}", w, n)).collect();
    // FNV-1a over "word=count;" in order: a checksum of the whole result.
    let mut sum: u64 = 0xcbf2_9ce4_8422_2325;
    for (w, n) in &total {
        for b in format!("{}={};", w, n).bytes() {
            sum = (sum ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    Ok(format!(
        "lines={} words={} distinct={} workers={} top={} sum={:016x}\n",
        lines.len(),
        words,
        total.len(),
        joined,
        top.join(","),
        sum
    )
    .into_bytes())
}

fn main() {
    let stop: HashSet<&'static str> = ["a", "an", "and", "of", "or", "the", "to"].into_iter().collect();
    std::process::exit(ember::main(|req| handle(&stop, req)));
}
