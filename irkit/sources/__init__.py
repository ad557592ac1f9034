"""The systems irkit reads during an incident: PostgreSQL (``pg``), Prometheus (``prom``), Kubernetes
(``k8s``) and the health endpoints (``http``).

Read-only and time-bounded: every call has a timeout, and each module translates its
client's failures into the irkit error tree through one table.
"""
