"""The curation report: ``gdt report --run RUN`` writes a static ``RUN/report/index.html`` with its images.

Reads every stage folder of a run (whatever has run so far) and writes one self-contained page: the
funnel, drops by reason with examples, distributions, the classifier's metrics, galleries, dedup
clusters, shard statistics, the config and every manifest. See ``build.write_report``.
"""
