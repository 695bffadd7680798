"""A key's rate limits hold however its calls spread over replicas: the counters are the database's."""

from __future__ import annotations

import time

import pytest

from sovereign_client.errors import RateLimitError
from sovereign_server.auth.admin import create_key
from sovereign_storage import KeyStore, open_database
from tests.replicas.conftest import Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.replicas]


def test_requests_per_minute_are_counted_across_replicas(cluster: Cluster) -> None:
    database = open_database(cluster.database)
    try:
        _, secret = create_key(KeyStore(database), "limited", rpm=4)
    finally:
        database.close()
    # Replicas look for keys again after their cache's two seconds.
    time.sleep(2.5)
    calls = [cluster.replicas[index % 3] for index in range(4)]
    for replica in calls:
        with replica.client(api_key=secret) as client:
            client.assistants.list()
    for replica in cluster.replicas:
        with replica.client(api_key=secret) as client, pytest.raises(RateLimitError):
            client.assistants.list()
