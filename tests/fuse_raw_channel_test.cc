// RawChannel without a kernel: a SOCK_SEQPACKET socket pair keeps message
// boundaries like /dev/fuse, so the test plays the kernel on one end and
// drives the channel's custom-I/O callbacks (what libfuse calls) on the
// other: INIT amendment, open-reply flags, kill flags seen by the handler,
// raw handlers and the per-opcode statistics.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs/fuse/raw_channel.h"

namespace untorn::fs::fuse {
namespace {

class RawChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv_), 0); }
  void TearDown() override {
    ::close(sv_[0]);
    ::close(sv_[1]);
  }
  int kernel() const { return sv_[0]; }
  int daemon() const { return sv_[1]; }

  // The kernel sends a request.
  template <class Body>
  void send(uint32_t opcode, uint64_t unique, const Body& body, std::string_view tail = {}) {
    std::vector<std::byte> m(sizeof(fuse_in_header) + sizeof(Body) + tail.size());
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(m.size());
    h.opcode = opcode;
    h.unique = unique;
    h.nodeid = 1;
    h.uid = 1000;
    std::memcpy(m.data(), &h, sizeof h);
    std::memcpy(m.data() + sizeof h, &body, sizeof body);
    std::memcpy(m.data() + sizeof h + sizeof body, tail.data(), tail.size());
    ASSERT_EQ(::write(kernel(), m.data(), m.size()), static_cast<ssize_t>(m.size()));
  }
  // libfuse reads the next request through the channel.
  ssize_t libfuse_read() { return RawChannel::io_read(daemon(), buf_, sizeof buf_, &ch_); }
  // libfuse replies through the channel (header + one payload iovec).
  void libfuse_reply(uint64_t unique, int error, const void* payload, size_t len) {
    fuse_out_header oh{};
    oh.unique = unique;
    oh.error = error;
    oh.len = static_cast<uint32_t>(sizeof oh + len);
    struct iovec iov[2] = {{&oh, sizeof oh}, {const_cast<void*>(payload), len}};
    ASSERT_EQ(RawChannel::io_writev(daemon(), iov, len ? 2 : 1, &ch_), static_cast<ssize_t>(oh.len));
  }
  // The kernel reads a reply.
  std::vector<std::byte> receive() {
    std::vector<std::byte> m(4096);
    const ssize_t n = ::read(kernel(), m.data(), m.size());
    EXPECT_GE(n, static_cast<ssize_t>(sizeof(fuse_out_header)));
    m.resize(static_cast<size_t>(std::max<ssize_t>(n, 0)));
    return m;
  }

  int sv_[2] = {-1, -1};
  int user_ = 0;
  RawChannel ch_{&user_};
  alignas(8) char buf_[1 << 16];
};

TEST_F(RawChannelTest, InitReplyGetsTheWantedFlagsTheKernelOffers) {
  ch_.want_init_flags(FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2 | FUSE_WRITEBACK_CACHE);
  fuse_init_in in{};
  in.major = 7;
  in.minor = 45;
  in.flags = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2 | FUSE_INIT_EXT;  // no writeback
  in.flags2 = 1u << 4;  // bit 36
  send(FUSE_INIT, 2, in);
  ASSERT_GT(libfuse_read(), 0);
  fuse_init_out out{};
  out.major = 7;
  out.minor = 31;
  out.flags = FUSE_ASYNC_READ | FUSE_INIT_EXT;  // what libfuse 3.14 would send
  out.max_write = 1 << 20;
  libfuse_reply(2, 0, &out, sizeof out);
  const std::vector<std::byte> r = receive();
  ASSERT_EQ(r.size(), sizeof(fuse_out_header) + sizeof out);
  fuse_init_out got{};
  std::memcpy(&got, r.data() + sizeof(fuse_out_header), sizeof got);
  EXPECT_EQ(got.flags, FUSE_ASYNC_READ | FUSE_INIT_EXT | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2)
      << "wanted and offered flags are added, not-offered ones (writeback) are not";
  EXPECT_EQ(got.max_write, 1u << 20) << "the rest of libfuse's reply is unchanged";
  const Negotiated n = ch_.negotiated();
  EXPECT_EQ(n.added, uint64_t{FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2});
  EXPECT_EQ(n.kernel_minor, 45u);
  EXPECT_EQ(n.proto_minor, 31u);
  const auto names = RawChannel::init_flag_names(n.accepted());
  EXPECT_NE(std::find(names.begin(), names.end(), "parallel_dirops"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "handle_killpriv_v2"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "writeback_cache"), names.end());
  EXPECT_EQ(ch_.stats().count(FUSE_INIT), 1u);
}

TEST_F(RawChannelTest, KillFlagsAreSeenByTheHandlerOfTheRequest) {
  fuse_write_in w{};
  w.size = 3;
  w.write_flags = FUSE_WRITE_KILL_SUIDGID;
  send(FUSE_WRITE, 7, w, "abc");
  ASSERT_GT(libfuse_read(), 0);
  EXPECT_EQ(RawChannel::current().in.opcode, static_cast<uint32_t>(FUSE_WRITE));
  EXPECT_TRUE(RawChannel::current().kill_suidgid());
  fuse_write_out wo{};
  wo.size = 3;
  libfuse_reply(7, 0, &wo, sizeof wo);
  receive();
  EXPECT_FALSE(RawChannel::current().kill_suidgid()) << "cleared once the reply went out";

  fuse_setattr_in s{};
  s.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
  send(FUSE_SETATTR, 8, s);
  ASSERT_GT(libfuse_read(), 0);
  EXPECT_TRUE(RawChannel::current().kill_suidgid());
  libfuse_reply(8, -EPERM, nullptr, 0);
  receive();

  fuse_open_in o{};
  o.open_flags = 0;
  send(FUSE_OPEN, 9, o);
  ASSERT_GT(libfuse_read(), 0);
  EXPECT_FALSE(RawChannel::current().kill_suidgid());
  RawChannel::add_open_flags(FOPEN_PARALLEL_DIRECT_WRITES);
  fuse_open_out oo{};
  oo.open_flags = FOPEN_DIRECT_IO;
  libfuse_reply(9, 0, &oo, sizeof oo);
  const std::vector<std::byte> r = receive();
  ASSERT_EQ(r.size(), sizeof(fuse_out_header) + sizeof oo);
  std::memcpy(&oo, r.data() + sizeof(fuse_out_header), sizeof oo);
  EXPECT_EQ(oo.open_flags, static_cast<uint32_t>(FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES));

  EXPECT_EQ(ch_.stats().count(FUSE_WRITE), 1u);
  EXPECT_EQ(ch_.stats().count(FUSE_SETATTR), 1u);
  EXPECT_EQ(ch_.stats().count(FUSE_OPEN), 1u);
  const auto s1 = ch_.stats().summary();
  auto it = std::find_if(s1.begin(), s1.end(), [](auto& x) { return x.name == "write"; });
  ASSERT_NE(it, s1.end());
  EXPECT_EQ(it->bytes, 3u) << "write bytes are the data of the request";
}

TEST_F(RawChannelTest, RawHandlersServeOpcodesLibfuseDoesNotKnow) {
  int calls = 0;
  ch_.set_raw_handler(FUSE_TMPFILE, [&](RawChannel& ch, const RawRequest& req) {
    calls++;
    EXPECT_EQ(req.in.uid, 1000u);
    ASSERT_EQ(req.arg_len, sizeof(fuse_create_in) + 2);
    if (calls == 1) {
      EXPECT_EQ(ch.reply_err(req, EOPNOTSUPP), 0);
    } else {
      const char data[] = "reply";
      struct iovec v = {const_cast<char*>(data), 5};
      EXPECT_EQ(ch.reply(req, &v, 1), 0);
    }
  });
  fuse_create_in c{};
  send(FUSE_TMPFILE, 11, c, std::string_view("x\0", 2));
  send(FUSE_TMPFILE, 12, c, std::string_view("y\0", 2));
  fuse_in_header none{};
  send(FUSE_GETATTR, 13, none);
  // One read: both TMPFILE requests are served inside it, GETATTR goes to libfuse.
  ASSERT_GT(libfuse_read(), 0);
  EXPECT_EQ(RawChannel::current().in.opcode, static_cast<uint32_t>(FUSE_GETATTR));
  EXPECT_EQ(calls, 2);
  std::vector<std::byte> r = receive();
  fuse_out_header oh{};
  std::memcpy(&oh, r.data(), sizeof oh);
  EXPECT_EQ(oh.unique, 11u);
  EXPECT_EQ(oh.error, -EOPNOTSUPP);
  r = receive();
  std::memcpy(&oh, r.data(), sizeof oh);
  EXPECT_EQ(oh.unique, 12u);
  EXPECT_EQ(oh.error, 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.data()) + sizeof oh, r.size() - sizeof oh), "reply");
  EXPECT_EQ(ch_.stats().count(FUSE_TMPFILE), 2u);
}

TEST_F(RawChannelTest, AThrowingRawHandlerStillReplies) {
  ch_.set_raw_handler(FUSE_TMPFILE, [](RawChannel&, const RawRequest&) { throw std::runtime_error("boom"); });
  fuse_create_in c{};
  send(FUSE_TMPFILE, 21, c);
  fuse_in_header none{};
  send(FUSE_GETATTR, 22, none);
  ASSERT_GT(libfuse_read(), 0);
  std::vector<std::byte> r = receive();
  fuse_out_header oh{};
  std::memcpy(&oh, r.data(), sizeof oh);
  EXPECT_EQ(oh.unique, 21u);
  EXPECT_EQ(oh.error, -EIO);
}

// Splice mode over the socket pair (a SOCK_SEQPACKET socket splices one
// message at a time, as /dev/fuse splices one request): the header and the
// fixed body land in libfuse's buffer; a large WRITE's payload stays in the
// pipe for the handler; what a handler leaves there is drained before the
// next request; small writes and other requests are read whole.
TEST_F(RawChannelTest, SpliceModeLeavesLargeWritePayloadsInThePipe) {
  ch_.enable_splice();
  std::string payload(8192 + 17, '\0');
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<char>('a' + i % 23);
  fuse_write_in w{};
  w.size = static_cast<uint32_t>(payload.size());
  w.offset = 12345;
  w.write_flags = FUSE_WRITE_KILL_SUIDGID;
  send(FUSE_WRITE, 31, w, payload);
  const ssize_t n = libfuse_read();
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof w + payload.size()));
  EXPECT_TRUE(ch_.splice_enabled()) << "a socket splices: no fallback";
  fuse_write_in got{};
  std::memcpy(&got, buf_ + sizeof(fuse_in_header), sizeof got);
  EXPECT_EQ(got.offset, 12345u);
  EXPECT_TRUE(RawChannel::current().kill_suidgid()) << "decoded from the header read out of the pipe";
  const RawChannel::PipedPayload pp = RawChannel::take_piped_payload();
  ASSERT_GE(pp.fd, 0);
  ASSERT_EQ(pp.len, payload.size());
  EXPECT_EQ(RawChannel::take_piped_payload().fd, -1) << "taken once";
  std::string back(pp.len, '\0');
  ASSERT_EQ(::read(pp.fd, back.data(), back.size()), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, payload);
  fuse_write_out wo{};
  wo.size = w.size;
  libfuse_reply(31, 0, &wo, sizeof wo);
  receive();

  // A handler that fails before reading the payload: the next request is
  // still read from its own first byte.
  send(FUSE_WRITE, 32, w, payload);
  ASSERT_GT(libfuse_read(), 0);
  ASSERT_EQ(RawChannel::take_piped_payload().len, payload.size());
  libfuse_reply(32, -ENOSPC, nullptr, 0);
  receive();
  fuse_getattr_in ga{};
  ga.fh = 0x1122334455667788ull;
  send(FUSE_GETATTR, 33, ga);
  ASSERT_EQ(libfuse_read(), static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof ga));
  EXPECT_EQ(RawChannel::current().in.unique, 33u);
  fuse_getattr_in ga_back{};
  std::memcpy(&ga_back, buf_ + sizeof(fuse_in_header), sizeof ga_back);
  EXPECT_EQ(ga_back.fh, ga.fh);
  EXPECT_EQ(RawChannel::take_piped_payload().fd, -1) << "not a write";
  libfuse_reply(33, -ENOENT, nullptr, 0);
  receive();

  // A small write is read whole into the buffer.
  fuse_write_in small{};
  small.size = 5;
  send(FUSE_WRITE, 34, small, "hello");
  ASSERT_EQ(libfuse_read(), static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof small + 5));
  EXPECT_EQ(RawChannel::take_piped_payload().fd, -1);
  EXPECT_EQ(std::string(buf_ + sizeof(fuse_in_header) + sizeof small, 5), "hello");
  wo.size = 5;
  libfuse_reply(34, 0, &wo, sizeof wo);
  receive();

  EXPECT_EQ(ch_.stats().spliced_count(), 2u);
  EXPECT_EQ(ch_.stats().count(FUSE_WRITE), 3u);
  EXPECT_NE(ch_.stats().to_json({}).find("\"spliced_writes\":{\"count\":2"), std::string::npos)
      << ch_.stats().to_json({});
}

// A descriptor that cannot splice (a directory here: splice says EINVAL,
// read EISDIR) turns splice mode off, and the caller gets read()'s answer.
TEST_F(RawChannelTest, SpliceModeFallsBackToReadWhereSpliceIsRefused) {
  ch_.enable_splice();
  const int dfd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  const ssize_t n = RawChannel::io_read(dfd, buf_, sizeof buf_, &ch_);
  const int e = errno;
  ::close(dfd);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(e, EISDIR) << "read()'s error, after splice's EINVAL";
  EXPECT_FALSE(ch_.splice_enabled()) << "splice refused: the copy path from now on";
}

TEST(RequestStatsTest, PercentilesAndJson) {
  RequestStats s;
  for (int i = 1; i <= 100; i++) s.record(FUSE_WRITE, 4096, static_cast<uint64_t>(i) * 1000);  // 1..100 us
  s.record(FUSE_GETXATTR, 0, 50000);
  const auto sum = s.summary();
  ASSERT_EQ(sum.size(), 2u);
  EXPECT_EQ(sum[0].name, "write");  // opcode order
  EXPECT_EQ(sum[0].count, 100u);
  EXPECT_EQ(sum[0].bytes, 409600u);
  EXPECT_NEAR(sum[0].p50_us, 50, 50 * 0.07);
  EXPECT_NEAR(sum[0].p99_us, 99, 99 * 0.07);
  const std::string j = s.to_json({"parallel_dirops"});
  EXPECT_EQ(j.rfind("{\"requests\":{\"write\":{\"count\":100,\"bytes\":409600,", 0), 0u) << j;
  EXPECT_NE(j.find("\"getxattr\":{\"count\":1,"), std::string::npos) << j;
  EXPECT_NE(j.find("\"capabilities\":[\"parallel_dirops\"]"), std::string::npos) << j;
  s.reset();
  EXPECT_TRUE(s.summary().empty());
  EXPECT_EQ(RequestStats::opcode_name(FUSE_COPY_FILE_RANGE), "copy_file_range");
  EXPECT_EQ(RequestStats::opcode_name(7), "opcode_7");
}

}  // namespace
}  // namespace untorn::fs::fuse
