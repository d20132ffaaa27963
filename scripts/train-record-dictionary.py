#!/usr/bin/env python3
"""Trains the zstd dictionary that task records are compressed with (state/codec.rs).

The dictionary is part of the store's on-disk format: once records are written with
it, it never changes. This script documents how it was made, and makes the next one
(which would get a new tag) the same way:

    pip install zstandard==0.25.0
    scripts/train-record-dictionary.py OUT.zdict

It generates task records shaped as berth writes them (the field order of
`berth_model::task::Task`, then berth's own members), from the container
definitions of the task-definition corpus (../shared/corpus/taskdefs, or the folder
given by --corpus), across regions, accounts, cluster names and every stage of a
task's life (PENDING, RUNNING, STOPPING, STOPPED with ECS's stop codes and reasons;
standalone and service tasks; ports, overrides, tags, health). Identifiers and times
are random, as they are in real records: the dictionary learns the structure, the
common values and the statistics of the rest, not any one record.

A fixed seed makes the samples the same on every run; zstd's trainer is
deterministic for the same samples and parameters.
"""

import argparse
import glob
import json
import os
import random
import sys

import zstandard

DICT_SIZE = 8192
LEVEL = 1
SAMPLES = 20000

REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-west-3", "eu-central-1",
           "ap-southeast-1", "ap-northeast-1", "ap-south-1", "sa-east-1", "ca-central-1"]
CLUSTERS = ["default", "prod", "production", "staging", "dev", "ci", "web", "edge",
            "workers", "batch", "apps", "platform", "test"]
STOP_REASONS = [
    ("EssentialContainerExited", "Essential container in task exited"),
    ("UserInitiated", "Task stopped by user"),
    ("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/{d})"),
    ("ServiceSchedulerInitiated", "Task failed container health checks"),
    ("TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 1 time(s)"),
    ("ServiceSchedulerInitiated", "Task stopped because the agent of container instance {i} was disconnected for more than 300 seconds."),
]


def hexid(rng, n=32):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def epoch(rng, base):
    return round(base + rng.random() * 5, rng.choice([3, 4, 6, 7]))


def load_corpus(folder):
    definitions = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        data = data.get("taskDefinition", data)
        containers = data.get("containerDefinitions") or []
        if containers:
            definitions.append(data)
    return definitions


def binding(rng, mapping):
    container_port = mapping.get("containerPort") or 80
    host = mapping.get("hostPort")
    if not host:
        host = rng.randint(32768, 60999)
    return {"bindIP": rng.choice(["0.0.0.0", "0.0.0.0", "::"]),
            "containerPort": container_port, "hostPort": host,
            "protocol": mapping.get("protocol", "tcp")}


def record(rng, definitions):
    d = rng.choice(definitions)
    region = rng.choice(REGIONS)
    account = rng.choice(["123456789012", "000000000000", str(rng.randint(10**11, 10**12 - 1))])
    cluster = rng.choice(CLUSTERS) if rng.random() < 0.8 else f"{rng.choice(CLUSTERS)}-{rng.randint(1, 99)}"
    arn = f"arn:aws:ecs:{region}:{account}"
    task_id = hexid(rng)
    task_arn = f"{arn}:task/{cluster}/{task_id}"
    family = d.get("family") or "app"
    revision = rng.randint(1, 40)
    base = 1.79e9 + rng.random() * 5e7
    status = rng.choices(["PENDING", "RUNNING", "STOPPING", "STOPPED", "PROVISIONING"],
                         [2, 6, 1, 4, 0.3])[0]
    started = status in ("RUNNING", "STOPPING", "STOPPED") and rng.random() < 0.9
    service = rng.random() < 0.55
    deployment = str(rng.randint(10**18, 10**19 - 1))
    instance_arn = f"{arn}:container-instance/{cluster}/{hexid(rng)}"
    stop = rng.choice(STOP_REASONS) if status == "STOPPED" else None
    health_checked = False

    containers = []
    reserved_cpu, reserved_memory, ports = 0, 0, []
    for c in d["containerDefinitions"]:
        name = c.get("name") or "app"
        item = {"containerArn": f"{arn}:container/{cluster}/{task_id}/{hexid(rng)}",
                "taskArn": task_arn, "name": name, "image": c.get("image") or "busybox"}
        if started:
            item["runtimeId"] = hexid(rng, 64)
        last = {"PENDING": "PENDING", "PROVISIONING": "PENDING", "RUNNING": "RUNNING",
                "STOPPING": "RUNNING", "STOPPED": "STOPPED"}[status]
        if status == "RUNNING" and not started:
            last = "PENDING"
        item["lastStatus"] = last
        if status == "STOPPED" and started:
            item["exitCode"] = rng.choice([0, 0, 1, 137, 143, 2])
            if rng.random() < 0.3:
                item["reason"] = rng.choice(["OutOfMemoryError: Container killed due to memory usage",
                                             "CannotStartContainerError", "DockerTimeoutError"])
        bindings = [binding(rng, m) for m in (c.get("portMappings") or [])] if started and status != "STOPPED" else []
        item["networkBindings"] = bindings
        ports += [b["hostPort"] for b in bindings]
        item["networkInterfaces"] = []
        if c.get("healthCheck"):
            health_checked = True
            item["healthStatus"] = rng.choice(["HEALTHY", "HEALTHY", "UNHEALTHY", "UNKNOWN"])
        cpu = c.get("cpu")
        item["cpu"] = str(cpu if cpu is not None else 0)
        reserved_cpu += int(cpu or 0)
        if c.get("memory") is not None:
            item["memory"] = str(c["memory"])
            reserved_memory += int(c["memory"])
        if c.get("memoryReservation") is not None:
            item["memoryReservation"] = str(c["memoryReservation"])
        containers.append(item)

    task = {"attachments": [], "attributes": [], "clusterArn": f"{arn}:cluster/{cluster}",
            "containerInstanceArn": instance_arn, "containers": containers}
    if d.get("cpu") is not None:
        task["cpu"] = str(d["cpu"])
    task["createdAt"] = epoch(rng, base)
    task["desiredStatus"] = "STOPPED" if status in ("STOPPING", "STOPPED") else "RUNNING"
    task["enableExecuteCommand"] = False
    if status == "STOPPED" and started:
        task["executionStoppedAt"] = epoch(rng, base + 100)
    task["group"] = f"service:{family}-svc" if service else f"family:{family}"
    task["healthStatus"] = (rng.choice(["HEALTHY", "UNHEALTHY"]) if health_checked and started
                            else "UNKNOWN")
    task["lastStatus"] = status if (status != "RUNNING" or started) else "PENDING"
    task["launchType"] = "EC2"
    if d.get("memory") is not None:
        task["memory"] = str(d["memory"])
    overrides = {"containerOverrides": [], "inferenceAcceleratorOverrides": []}
    if rng.random() < 0.15:
        c = rng.choice(d["containerDefinitions"])
        override = {"name": c.get("name") or "app"}
        if rng.random() < 0.5:
            override["command"] = rng.choice([["sh", "-c", "sleep 3600"], ["/bin/server", "--port", "8080"]])
        if rng.random() < 0.5:
            override["environment"] = [{"name": "STAGE", "value": rng.choice(["prod", "dev"])}]
        overrides["containerOverrides"].append(override)
    task["overrides"] = overrides
    if started:
        task["pullStartedAt"] = epoch(rng, base + 1)
        task["pullStoppedAt"] = epoch(rng, base + 2)
        task["startedAt"] = epoch(rng, base + 3)
    if service:
        task["startedBy"] = f"ecs-svc/{deployment}"
    elif rng.random() < 0.5:
        task["startedBy"] = rng.choice(["ci", "cron", "deploy-script", "nightly-batch", "user"])
    if stop:
        task["stopCode"] = stop[0]
        task["stoppedAt"] = epoch(rng, base + 200)
        task["stoppedReason"] = stop[1].format(d=deployment, i=instance_arn)
        task["stoppingAt"] = epoch(rng, base + 90)
    elif status == "STOPPING":
        task["stoppingAt"] = epoch(rng, base + 90)
        task["stoppedReason"] = rng.choice(["Task stopped by user",
                                            f"Scaling activity initiated by (deployment ecs-svc/{deployment})"])
    task["tags"] = ([] if rng.random() < 0.85 else
                    [{"key": rng.choice(["team", "env", "owner"]), "value": rng.choice(["web", "prod", "ops"])}])
    task["taskArn"] = task_arn
    task["taskDefinitionArn"] = f"{arn}:task-definition/{family}:{revision}"
    task["version"] = rng.randint(1, 6)
    task["berthReserved"] = {"cpu": reserved_cpu, "memory": reserved_memory,
                             "tcpPorts": ports, "udpPorts": []}
    task["berthReleased"] = status == "STOPPED"
    task["berthAccounted"] = status == "STOPPED" and service and rng.random() < 0.8
    return json.dumps(task, separators=(",", ":")).encode()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--corpus", default=os.path.join(here, "..", "..", "shared", "corpus", "taskdefs"))
    args = parser.parse_args()
    definitions = load_corpus(args.corpus)
    if not definitions:
        sys.exit(f"no task definitions under {args.corpus}")
    rng = random.Random(20261129)
    samples = [record(rng, definitions) for _ in range(SAMPLES)]
    trained = zstandard.train_dictionary(DICT_SIZE, samples, level=LEVEL, dict_id=0x62657232,
                                         notifications=0, threads=1)
    with open(args.out, "wb") as f:
        f.write(trained.as_bytes())
    sizes = [len(s) for s in samples]
    print(f"{len(definitions)} definitions, {len(samples)} records of {sum(sizes) / len(sizes):.0f} B "
          f"on average; dictionary {len(trained.as_bytes())} B -> {args.out}")


if __name__ == "__main__":
    main()
