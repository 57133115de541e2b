import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiRawHTTP
import PGNotiTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    @Suite struct CrashTests {
        static func tomatoApproval(_ n: Int, port: Int) -> [UInt8] {
            let tid = "tomato001m" + String(format: "%020d", n)
            let body =
                "PayMethod=CARD&MID=tomato001m&Amt=\(1000 + n)&Name=%C8%AB%B1%E6%B5%BF&GoodsName=burst&TID=\(tid)&OID=ORD\(n)&AuthDate=241123153000&AuthCode=1&StateCd=0&ResultCode=3001&ResultMsg=ok"
            return Array(
                "POST /notify/tomatopay HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                    .utf8)
        }

        static func tid(ofQueueFile url: URL) throws -> String {
            let event = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            return event["tid"] as! String
        }

        @Test func sigkillDuringABurstLosesNothingAckedAndFilesNothingTwice() async throws {
            let total = 1000
            let dir = try DaemonProcess.makeDirectory("crash")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let port = daemon.port

            let acked = Shared(Set<Int>())
            let killed = Shared(false)
            let killAfter = 250
            // Sixteen blocking clients, each on a thread of its own (never the cooperative pool's).
            let pid = daemon.process.processIdentifier
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        try await onOwnThread {
                            var n = worker
                            while n < total {
                                if let response = try? RawHTTPClient.exchange(
                                    host: "127.0.0.1", port: port, bytes: Self.tomatoApproval(n, port: port),
                                    timeoutSeconds: 5),
                                    response.status == 200, response.bodyText == "OK"
                                {
                                    let count = acked.withLock {
                                        $0.insert(n)
                                        return $0.count
                                    }
                                    // Exactly one worker flips the flag and kills.
                                    if count == killAfter
                                        && killed.withLock({ done in
                                            defer { done = true }
                                            return !done
                                        })
                                    {
                                        kill(pid, SIGKILL)
                                    }
                                }
                                n += 16
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            _ = try await daemon.waitForExit(timeout: .seconds(30))
            #expect(daemon.process.terminationReason == .uncaughtSignal)
            let ackedBeforeKill = acked.withLock { $0 }
            #expect(ackedBeforeKill.count >= killAfter)
            #expect(ackedBeforeKill.count < total, "the kill landed mid-burst")

            // Restart: the outbox replays whatever was committed but not yet filed.
            let restarted = try await DaemonProcess.start(dir)
            var files = try restarted.queueFiles()
            let tidsAfterRestart = try files.map(Self.tid(ofQueueFile:))
            #expect(Set(tidsAfterRestart).count == tidsAfterRestart.count, "no event filed twice")
            for n in ackedBeforeKill {
                #expect(tidsAfterRestart.contains("tomato001m" + String(format: "%020d", n)), "ACKed \(n) was lost")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: restarted.queueTmp.path).isEmpty)

            // The PGs retry everything they did not hear an ACK for (and some they did).
            for n in 0..<total {
                let response = try RawHTTPClient.exchange(
                    host: "127.0.0.1", port: restarted.port, bytes: Self.tomatoApproval(n, port: restarted.port))
                #expect(response.status == 200 && response.bodyText == "OK", "\(n)")
            }
            try await restarted.waitForQueue(count: total, timeout: .seconds(60))
            files = try restarted.queueFiles()
            let finalTids = try files.map(Self.tid(ofQueueFile:))
            #expect(finalTids.count == total)
            #expect(Set(finalTids).count == total)
            #expect(try await restarted.terminate() == 0)
        }
    }
}
