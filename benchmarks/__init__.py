"""The benchmark harness: the service as deployed against OpenBao KV v2 and the framework
ceiling, on one machine in one run (`./benchmarks/bench.sh`, or `python -m benchmarks`)."""
