#!/usr/bin/env python3
"""One line of scripts/bench-scale.sh's results: reads the jobs (claim times), their ledgers
(committed segments, first segment time) and the segments the origin published; prints JSON."""

import argparse
import datetime
import glob
import json
import os
import re
import statistics


def parse_time(text):
    if text is None:
        return None
    text = text.replace("Z", "+00:00")
    # Python < 3.11 accepts at most 6 fractional digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return datetime.datetime.fromisoformat(text)


def main():
    parser = argparse.ArgumentParser()
    for name in ["backend", "recordings", "jobs", "published", "sqlite"]:
        parser.add_argument("--" + name, required=True)
    for name in ["count", "base-kib", "peak-kib", "rss-kib", "store-operations", "descriptors"]:
        parser.add_argument("--" + name, type=int, required=True)
    for name in ["cpu", "window"]:
        parser.add_argument("--" + name, type=float, required=True)
    arguments = parser.parse_args()

    published = set()
    with open(arguments.published) as lines:
        for line in lines:
            match = re.search(r"seg(\d+)\.ts", line)
            if match:
                published.add(int(match.group(1)))

    claims = {}
    if os.path.exists(arguments.jobs):
        with open(arguments.jobs) as lines:
            for line in lines:
                try:
                    job = json.loads(line)
                except ValueError:
                    continue
                claims[job["id"]] = parse_time(job.get("started_at"))

    lost = 0
    gap_entries = 0
    media_seconds = 0.0
    first_segment_delays = []
    recorded_jobs = 0
    for ledger in glob.glob(os.path.join(arguments.recordings, "*", "**", "main-ledger.jsonl"), recursive=True):
        job_id = os.path.relpath(ledger, arguments.recordings).split(os.sep)[0]
        committed = set()
        first_wall = None
        with open(ledger) as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                number = re.search(r"seg(\d+)\.ts", entry.get("uri", ""))
                if entry.get("state") in ("ok", "committed"):
                    media_seconds += entry.get("duration_seconds", 0.0)
                    if number:
                        committed.add(int(number.group(1)))
                    wall = parse_time(entry.get("wall_time"))
                    if first_wall is None or wall < first_wall:
                        first_wall = wall
                elif entry.get("state") == "gap":
                    gap_entries += 1
        if not committed:
            continue
        recorded_jobs += 1
        window = range(min(committed), max(committed) + 1)
        lost += sum(1 for number in window if number in published and number not in committed)
        claim = claims.get(job_id)
        if claim and first_wall:
            first_segment_delays.append((first_wall - claim).total_seconds())

    count = arguments.count
    recording_minutes = media_seconds / 60
    result = {
        "backend": arguments.backend,
        "count": count,
        "jobs_with_segments": recorded_jobs,
        "peak_rss_above_base_per_recording_mib": round(
            (arguments.peak_kib - arguments.base_kib) / 1024 / count, 3
        ),
        "rss_at_end_above_base_per_recording_mib": round(
            (arguments.rss_kib - arguments.base_kib) / 1024 / count, 3
        ),
        "cpu_seconds": round(arguments.cpu, 1),
        "recorded_minutes": round(recording_minutes, 1),
        "cpu_seconds_per_recording_minute": round(arguments.cpu / recording_minutes, 4)
        if recording_minutes
        else None,
        "lost_segments": lost,
        "gap_entries": gap_entries,
        "median_claim_to_first_segment_s": round(statistics.median(first_segment_delays), 2)
        if first_segment_delays
        else None,
        "store_operations_per_second": round(arguments.store_operations / arguments.window, 1)
        if arguments.backend == "redis"
        else None,
        "descriptors_open": arguments.descriptors,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
