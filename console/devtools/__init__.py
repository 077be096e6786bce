"""Tools for the demo and the tests, never imported by production code: the demo mail sandbox (an
SMTP server that answers with real RFC 3464 reports), the loopback Postfix the tests and benches
send through, free ports."""
