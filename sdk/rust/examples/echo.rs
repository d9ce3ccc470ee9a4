//! echo - the smallest Ember function in Rust: it answers with the request.
//! The runtimes bench measures the Rust runtime's own cold start with it.
fn main() {
    std::process::exit(ember::main(|req| Ok(req.payload.to_vec())));
}
