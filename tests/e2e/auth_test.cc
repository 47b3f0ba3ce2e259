// Authentication over real processes: `hippo server` makes a token in a 0600 file beside its
// database on first start and reuses it; calls without it, or with another, are refused;
// token files other users may read are refused; --insecure lets every caller in with a
// warning; off loopback plaintext is refused. TLS: a certificate made at test time by the
// openssl command, used by the CLI's clients and by a worker that runs a study.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/e2e_harness.h"

namespace hippo::e2e {
namespace {

namespace v1 = ::hippo::v1;

constexpr char kSpec[] =
    "name: auth-study\n"
    "objective: {metric: val_accuracy, direction: MAXIMIZE}\n"
    "trainer: {kind: sim, seed: 0, config: {virtual_time: true}}\n"
    "search_space:\n"
    "  parameters:\n"
    "    - {name: lr, sequence: {constant: {range: {low: 0.001, high: 0.2, log: true}}}}\n"
    "algorithm: {name: random}\n"
    "budget: {max_steps: 10, max_trials: 4}\n";

std::string Text(const std::string& path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

int Mode(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 ? static_cast<int>(info.st_mode & 07777) : -1;
}

// Polls `path` until it holds `needle` (a process's log); what it holds then.
std::string WaitForText(const std::string& path, const std::string& needle) {
  std::string text;
  for (int attempt = 0; attempt < 200 && text.find(needle) == std::string::npos; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    text = Text(path);
  }
  return text;
}

// No token at all: the harness's own token lookup is overridden.
const Env kNoToken = {{"HIPPO_TOKEN_FILE", ""}, {"HIPPO_TOKEN", ""}};

TEST(AuthTest, DefaultServerMakesA0600TokenAndRefusesCallsWithoutIt) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const std::string token_file = dir.File("hippo.db") + ".token";
  Process server({"server", "--listen", address, "--db", dir.File("hippo.db"), "--http", "off"},
                 dir.File("server.log"), kNoToken);
  ASSERT_TRUE(WaitForServer(address)) << Text(dir.File("server.log"));
  EXPECT_EQ(Mode(token_file), 0600);
  const std::string token = Text(token_file);
  EXPECT_EQ(token.size(), 65u) << token;  // 256 bits in hex, and a newline
  EXPECT_NE(Text(dir.File("server.log")).find(token_file), std::string::npos)
      << "the server says where its token is";

  const CommandResult without = RunHippo({"studies", "--coordinator", address}, kNoToken);
  EXPECT_EQ(without.exit_code, 1);
  EXPECT_NE(without.output.find("needs a token"), std::string::npos) << without.output;
  Env wrong = kNoToken;
  wrong["HIPPO_TOKEN"] = "0123456789abcdef";
  const CommandResult refused = RunHippo({"studies", "--coordinator", address}, wrong);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("not this coordinator's"), std::string::npos) << refused.output;

  // A raw call without the token changes nothing.
  auto stranger =
      v1::StudyService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::CreateStudyRequest request;
  request.mutable_spec()->set_name("intruder");
  v1::Study study;
  EXPECT_EQ(stranger->CreateStudy(&context, request, &study).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // The token from --token-file, from $HIPPO_TOKEN_FILE, and from $HIPPO_TOKEN.
  const CommandResult by_flag =
      RunHippo({"studies", "--coordinator", address, "--token-file", token_file, "--json"});
  EXPECT_EQ(by_flag.exit_code, 0) << by_flag.output;
  EXPECT_EQ(by_flag.output.find("intruder"), std::string::npos) << by_flag.output;
  Env by_file = kNoToken;
  by_file["HIPPO_TOKEN_FILE"] = token_file;
  EXPECT_EQ(RunHippo({"studies", "--coordinator", address}, by_file).exit_code, 0);
  Env by_value = kNoToken;
  by_value["HIPPO_TOKEN"] = token.substr(0, 64);
  EXPECT_EQ(RunHippo({"studies", "--coordinator", address}, by_value).exit_code, 0);

  // Workers too: one without the token is refused (its log says why) and never listed.
  Process outsider({"worker", "--coordinator", address, "--id", "outsider", "--device", "cpu",
                    "--checkpoint-dir", dir.File("checkpoints")},
                   dir.File("outsider.log"), kNoToken);
  Process member({"worker", "--coordinator", address, "--id", "member", "--device", "cpu",
                  "--checkpoint-dir", dir.File("checkpoints")},
                 dir.File("member.log"), by_file);
  EXPECT_NE(WaitForText(dir.File("outsider.log"), "needs a token").find("needs a token"),
            std::string::npos);
  std::string listed;
  for (int attempt = 0; attempt < 100 && listed.find("member") == std::string::npos; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    listed = RunHippo({"workers", "--coordinator", address, "--json"}, by_file).output;
  }
  EXPECT_NE(listed.find("member"), std::string::npos) << listed;
  EXPECT_EQ(listed.find("outsider"), std::string::npos) << listed;
}

TEST(AuthTest, TheTokenFileIsReusedAfterARestart) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const std::vector<std::string> args = {
      "server", "--listen", address, "--db", dir.File("hippo.db"), "--http", "off"};
  std::string first;
  {
    Process server(args, dir.File("server.log"), kNoToken);
    ASSERT_TRUE(WaitForServer(address));
    first = Text(dir.File("hippo.db.token"));
    server.Kill(SIGTERM);
    EXPECT_EQ(server.Wait(), 0);
  }
  Process again(args, dir.File("server.log"), kNoToken);
  ASSERT_TRUE(WaitForServer(address));  // with the same token
  EXPECT_EQ(Text(dir.File("hippo.db.token")), first);
  EXPECT_EQ(Mode(dir.File("hippo.db.token")), 0600);
  EXPECT_NE(WaitForText(dir.File("server.log"), "token read from").find("token read from"),
            std::string::npos);
}

TEST(AuthTest, TokenFilesOtherUsersMayReadAreRefused) {
  TempDir dir;
  const std::string token_file = dir.File("hippo.db.token");
  std::ofstream(token_file) << "s3cret\n";
  ASSERT_EQ(chmod(token_file.c_str(), 0644), 0);
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  const CommandResult server =
      RunHippo({"server", "--listen", address, "--db", dir.File("hippo.db")}, kNoToken);
  EXPECT_EQ(server.exit_code, 2);
  EXPECT_NE(server.output.find(token_file), std::string::npos) << server.output;
  EXPECT_NE(server.output.find("chmod 600"), std::string::npos) << server.output;
  EXPECT_FALSE(std::filesystem::exists(dir.File("hippo.db")));
  // A client refuses it as well, before it sends the token anywhere.
  const CommandResult client =
      RunHippo({"studies", "--coordinator", address, "--token-file", token_file});
  EXPECT_EQ(client.exit_code, 2);
  EXPECT_NE(client.output.find("chmod 600 " + token_file), std::string::npos) << client.output;
}

TEST(AuthTest, WhitespaceAroundTheTokenIsTrimmedInFilesAndTheEnvironmentAlike) {
  TempDir dir;
  const std::string token_file = dir.File("token");
  std::ofstream(token_file) << "  \ts3cret-token \n\n";
  ASSERT_EQ(chmod(token_file.c_str(), 0600), 0);
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server({"server", "--listen", address, "--db", dir.File("hippo.db"), "--http", "off",
                  "--token-file", token_file},
                 dir.File("server.log"), kNoToken);
  ASSERT_TRUE(WaitForServer(address)) << Text(dir.File("server.log"));
  Env padded = kNoToken;
  padded["HIPPO_TOKEN"] = " s3cret-token\t\n";
  EXPECT_EQ(RunHippo({"studies", "--coordinator", address}, padded).exit_code, 0);
  const std::string bare = dir.File("bare");
  std::ofstream(bare) << "s3cret-token";
  ASSERT_EQ(chmod(bare.c_str(), 0600), 0);
  EXPECT_EQ(RunHippo({"studies", "--coordinator", address, "--token-file", bare}).exit_code, 0);
  Env longer = kNoToken;
  longer["HIPPO_TOKEN"] = "s3cret-token2";
  EXPECT_EQ(RunHippo({"studies", "--coordinator", address}, longer).exit_code, 1);
}

TEST(AuthTest, InsecureLetsEveryCallerInAfterAWarning) {
  TempDir dir;
  const std::string address = "127.0.0.1:" + std::to_string(FreePort());
  Process server(
      {"server", "--listen", address, "--db", dir.File("hippo.db"), "--http", "off", "--insecure"},
      dir.File("server.log"), kNoToken);
  ASSERT_TRUE(WaitForServer(address));
  EXPECT_NE(Text(dir.File("server.log")).find("WARNING: --insecure"), std::string::npos)
      << Text(dir.File("server.log"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("hippo.db.token")));
  EXPECT_EQ(RunHippo({"studies", "--coordinator", address}, kNoToken).exit_code, 0);
  // A token and --insecure contradict each other.
  const CommandResult both = RunHippo({"server", "--listen", address, "--db", dir.File("x.db"),
                                       "--insecure", "--token-file", dir.File("hippo.db")});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.output.find("--insecure and --token-file"), std::string::npos) << both.output;
}

TEST(AuthTest, OffLoopbackPlaintextIsRefused) {
  TempDir dir;
  const std::string grpc_address = "0.0.0.0:" + std::to_string(FreePort());
  const CommandResult grpc_refused =
      RunHippo({"server", "--listen", grpc_address, "--db", dir.File("x.db")});
  EXPECT_EQ(grpc_refused.exit_code, 2);
  EXPECT_NE(grpc_refused.output.find("--listen " + grpc_address + " is not a loopback address"),
            std::string::npos)
      << grpc_refused.output;
  EXPECT_NE(grpc_refused.output.find("--tls-cert"), std::string::npos) << grpc_refused.output;
  EXPECT_FALSE(std::filesystem::exists(dir.File("x.db")));
  const CommandResult http_refused =
      RunHippo({"server", "--listen", "127.0.0.1:" + std::to_string(FreePort()), "--http",
                "0.0.0.0:0", "--db", dir.File("y.db")});
  EXPECT_EQ(http_refused.exit_code, 2);
  EXPECT_NE(http_refused.output.find("--http 0.0.0.0:0 is not a loopback address"),
            std::string::npos)
      << http_refused.output;
}

// `hippo run` has neither --insecure nor --tls-cert: its refusal of a dashboard off loopback
// names its own flag and a way that exists, before anything starts.
TEST(AuthTest, HippoRunRefusesADashboardOffLoopbackNamingAFixItHas) {
  TempDir dir;
  const CommandResult refused =
      RunHippo({"run", std::string(HIPPO_SOURCE_DIR) + "/examples/sim_demo.yaml", "--db",
                dir.File("run.db"), "--dashboard", "--dashboard-listen", "0.0.0.0:0"});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("--dashboard-listen 0.0.0.0:0 is not a loopback address"),
            std::string::npos)
      << refused.output;
  EXPECT_NE(refused.output.find("127.0.0.1:0"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("hippo server with --http ADDRESS --tls-cert FILE"),
            std::string::npos)
      << refused.output;
  // Not the flags of `hippo server`, which `hippo run` would refuse as unknown.
  EXPECT_EQ(refused.output.find("--insecure"), std::string::npos) << refused.output;
  EXPECT_EQ(refused.output.find("--http 0.0.0.0:0"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(dir.File("run.db")));
}

// A self-signed certificate for localhost and 127.0.0.1 made by the openssl command, and its key:
// dir/cert.pem, dir/key.pem.
void MakeCertificate(const TempDir& dir) {
  const std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
      dir.File("key.pem") + "' -out '" + dir.File("cert.pem") + "' > '" + dir.File("openssl.log") +
      "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << Text(dir.File("openssl.log"));
}

TEST(AuthTest, TlsCarriesClientsWorkersAndTheDashboardWithACertificateMadeForTheTest) {
  TempDir dir;
  MakeCertificate(dir);
  const std::string cert = dir.File("cert.pem");
  const std::string port = std::to_string(FreePort());
  const std::string address = "127.0.0.1:" + port;
  // Off loopback is allowed with TLS.
  Process server({"server", "--listen", "0.0.0.0:" + port, "--db", dir.File("hippo.db"), "--http",
                  "127.0.0.1:0", "--tls-cert", cert, "--tls-key", dir.File("key.pem")},
                 dir.File("server.log"), kNoToken);
  CommandResult listed;
  for (int attempt = 0; attempt < 200 && listed.exit_code != 0; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    listed = RunHippo({"studies", "--coordinator", address, "--tls-ca", cert});
  }
  ASSERT_EQ(listed.exit_code, 0) << listed.output << Text(dir.File("server.log"));
  // Plaintext does not reach a TLS server.
  const CommandResult plaintext = RunHippo({"studies", "--coordinator", address});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_NE(plaintext.output.find("cannot reach the coordinator"), std::string::npos)
      << plaintext.output;

  std::ofstream(dir.File("spec.yaml")) << kSpec;
  const CommandResult submitted =
      RunHippo({"submit", dir.File("spec.yaml"), "--coordinator", address, "--tls-ca", cert});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const std::string study_id = submitted.output.substr(0, submitted.output.find('\n'));
  Process worker({"worker", "--coordinator", address, "--tls-ca", cert, "--id", "tls-worker",
                  "--device", "cpu", "--checkpoint-dir", dir.File("checkpoints")},
                 dir.File("worker.log"));
  std::string shown;
  for (int attempt = 0; attempt < 600 && shown.find("STUDY_COMPLETED") == std::string::npos;
       ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    shown =
        RunHippo({"study", study_id, "--coordinator", address, "--tls-ca", cert, "--json"}).output;
  }
  EXPECT_NE(shown.find("STUDY_COMPLETED"), std::string::npos)
      << shown << Text(dir.File("worker.log"));

  // The dashboard serves HTTPS with the same certificate, and wants the token too.
  const std::string log = WaitForText(dir.File("server.log"), "dashboard at");
  const std::smatch url = [&] {
    std::smatch match;
    std::regex_search(log, match,
                      std::regex("dashboard at https://127\\.0\\.0\\.1:(\\d+)/\\?token=(\\w+)"));
    return match;
  }();
  ASSERT_EQ(url.size(), 3u) << log;
  httplib::SSLClient https("127.0.0.1", std::stoi(url[1]));
  https.set_ca_cert_path(cert.c_str());
  https.enable_server_certificate_verification(true);
  const httplib::Result refused = https.Get("/api/v1/studies");
  ASSERT_TRUE(refused) << httplib::to_string(refused.error());
  EXPECT_EQ(refused->status, 401);
  const httplib::Result studies = https.Get("/api/v1/studies", {{"x-hippo-token", url[2]}});
  ASSERT_TRUE(studies) << httplib::to_string(studies.error());
  EXPECT_EQ(studies->status, 200);
  EXPECT_NE(studies->body.find(study_id), std::string::npos) << studies->body;
}

}  // namespace
}  // namespace hippo::e2e
