"""HTTP plumbing both connectors share: call records, pacing, path segments, status mapping."""
