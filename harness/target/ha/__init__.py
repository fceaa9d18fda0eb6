"""HA devices: synchronous mirroring between target nodes, sync and heartbeat
channels, replica states, resync and failover strategies."""
