import CoreMetrics
import PGNotiLogging
import Prometheus
import Synchronization

/// The process's metrics go to one Prometheus registry, served on the admin listener.
enum MetricsRegistry {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with a Prometheus factory the first time; the metrics system
    /// can be bootstrapped once per process.
    static func bootstrapOnce() -> PrometheusCollectorRegistry {
        registry.withLock { existing in
            if let existing { return existing }
            let made = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: made)
            factory.durationHistogramBuckets["pgnoti_ack_latency_seconds"] = [
                .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                .seconds(1), .seconds(5),
            ]
            factory.valueHistogramBuckets["pgnoti_group_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
            MetricsSystem.bootstrap(factory)
            existing = made
            return made
        }
    }
}

extension LogSink: LogSinkCounters {}
