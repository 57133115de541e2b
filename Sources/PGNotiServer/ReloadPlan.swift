import PGNotiConfig

/// What a configuration read again on SIGHUP changes in a running daemon. Keys, ACK bodies, the
/// PGs' authentication and the limits that can change under a running listener apply at once;
/// the rest (addresses, paths, the log level, the connection guard's limits) keep their old
/// values until a restart, and are named so the reload can say so. Pure.
struct ReloadPlan {
    /// The configuration the daemon runs on from now: the new one, with what cannot change live
    /// kept as it was, so the status line and readiness stay true.
    let live: Config
    /// The config keys that changed but take effect only after a restart.
    let restartKeys: [String]

    init(old: Config, new: Config) {
        var restart: [String] = []
        if old.listen != new.listen { restart.append("listen") }
        if old.adminListen != new.adminListen { restart.append("admin_listen") }
        if old.database != new.database { restart.append("database") }
        if old.queue != new.queue { restart.append("queue") }
        if old.logLevel != new.logLevel { restart.append("log_level") }
        if old.limits.readTimeoutSeconds != new.limits.readTimeoutSeconds {
            restart.append("limits.read_timeout_seconds")
        }
        if old.limits.maxHeaderBytes != new.limits.maxHeaderBytes { restart.append("limits.max_header_bytes") }
        if old.maxBodyBytes != new.maxBodyBytes { restart.append("max_body_bytes") }
        if old.limits.shutdownGraceSeconds != new.limits.shutdownGraceSeconds {
            restart.append("limits.shutdown_grace_seconds")
        }
        var live = new
        // The connection guard, built with the listener, drops a declared oversized body by the
        // limit it started with; the front must refuse by the same limit.
        live.maxBodyBytes = old.maxBodyBytes
        live.listen = old.listen
        live.adminListen = old.adminListen
        live.database = old.database
        live.queue = old.queue
        self.live = live
        restartKeys = restart
    }
}
