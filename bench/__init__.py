"""Benchmarks, pcap replay front end, trace generators and experiments."""
