"""A pipeline process for stream tests: ``--pipeline MODULE:NAME`` run under the test's
own pipeline name (so tests never share groups or topics) until SIGTERM or kill -9."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal

from kes.store.kafka import KafkaConfig
from kes.streams import Pipeline
from kes.streams.runner import load_pipeline
from tests.faults import client_from_env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="KafkaConfig fields as JSON")
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # tests ask for stacks when stuck
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    template = load_pipeline(args.pipeline)
    pipeline = Pipeline(args.name, template.build, aggregates=template.aggregates)
    fields = json.loads(args.config)
    fields.setdefault("client", client_from_env())  # secured: settings in the environment
    config = KafkaConfig(**fields)
    # Only to check that the tests catch what exactly-once prevents (see test_streams.py).
    guarantee = os.environ.get("KES_TEST_STREAM_GUARANTEE", "exactly-once")
    streams = pipeline.application(config, state_dir=args.state_dir, processing_guarantee=guarantee)
    streams.app.run()


if __name__ == "__main__":
    main()
