"""S3 staging through the provider's S3Hook: what a download reads."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_bounded_download_refuses_a_larger_object_before_reading_it(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from petal_labeller.airflow.aws import s3_staging

    read: list[str] = []

    class Hook:
        def head_object(self, key, bucket_name):
            return {"ContentLength": 11}

        def check_for_key(self, key, bucket_name):
            return True

        def get_key(self, key, bucket_name):
            class Object:
                def download_file(self, path):
                    read.append(key)
                    Path(path).write_text("hello world")

            return Object()

    with pytest.raises(AirflowFailException, match="11 bytes, more than the 10"):
        s3_staging.download(Hook(), "b", "out.jsonl.out", tmp_path / "a", max_bytes=10)
    assert read == []
    path = s3_staging.download(Hook(), "b", "out.jsonl.out", tmp_path / "b", max_bytes=11)
    assert path.read_text() == "hello world" and read == ["out.jsonl.out"]
