// Package qdrantdouble is an in-memory stand-in for Qdrant's gRPC API, for tests.
//
// Qdrant cannot run on the machines this project is built and tested on, so tests point the real
// client (github.com/qdrant/go-client/qdrant) at this double instead. It is served on a loopback
// port by grpc-go with the go-client's own generated server interfaces, so the wire format is the
// real one; production code never knows the double exists.
//
// The double aims to be faithful for the calls the project makes, errors included: the status codes
// and message texts below were taken from Qdrant's sources (paths are cited next to each one, see
// errors.go). Everything it does not implement answers codes.Unimplemented, loudly, rather than
// pretending: the Unimplemented…Server types are embedded for that reason, and request options the
// double cannot honour (prefetch, named vectors, sparse vectors, geo filters, …) are refused the
// same way.
//
// Search is exact (brute force); HNSW and quantization settings are stored and reported, not used.
package qdrantdouble

import (
	"context"
	"crypto/subtle"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // Qdrant accepts gzip-compressed requests (src/tonic/mod.rs)
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Version is what HealthCheck reports: the Qdrant release the go-client v1.17.1 is paired with.
const Version = "1.17.1"

// Option configures a Server.
type Option func(*Server)

// WithAPIKey makes the server require the key in the `api-key` metadata header (or as
// `authorization: Bearer <key>`), like Qdrant's `service.api_key`.
func WithAPIKey(key string) Option {
	return func(s *Server) { s.apiKey = key }
}

// WithReadOnlyAPIKey adds a key that may only read (Qdrant's `service.read_only_api_key`): with
// it, calls that change anything are refused with PermissionDenied.
func WithReadOnlyAPIKey(key string) Option {
	return func(s *Server) { s.readOnlyKey = key }
}

// WithFault installs a fault injector, called before every RPC with its full gRPC method name
// (e.g. qdrant.Points_Upsert_FullMethodName, "/qdrant.Points/Upsert"). A non-nil error is returned
// to the client instead of running the call; return a status error (status.Error) to choose the
// code, a plain error reaches the client as codes.Unknown, as grpc-go does for any handler. The
// function may also sleep to simulate latency. See also Server.SetFault.
func WithFault(fn func(method string) error) Option {
	return func(s *Server) { s.fault = fn }
}

// Server is a running Qdrant double. Its data lives as long as the Server, across Stop/Restart.
type Server struct {
	t           testing.TB
	apiKey      string
	readOnlyKey string

	mu    sync.Mutex // guards everything below, not the data (see store)
	fault func(method string) error
	calls map[string]int
	// upserted counts points written by successful upserts, per collection and payload
	// document_id (see UpsertedByDocument).
	upserted map[string]map[string]int
	addr     string // host:port, fixed by the first listen so that Restart comes back on it
	grpcSrv  *grpc.Server
	serveCh  chan struct{} // closed when the current Serve returns

	data *store
}

// Start starts a double on 127.0.0.1 on a free port and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, calls: map[string]int{}, data: newStore()}
	for _, o := range opts {
		o(s)
	}
	if err := s.listen("127.0.0.1:0"); err != nil {
		t.Fatalf("qdrantdouble: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Serve starts a double outside a test (the demo): on addr ("127.0.0.1:0" for a free port),
// until Stop. Restart then reports a failure to listen again by panicking.
func Serve(addr string, opts ...Option) (*Server, error) {
	s := &Server{calls: map[string]int{}, data: newStore()}
	for _, o := range opts {
		o(s)
	}
	if err := s.listen(addr); err != nil {
		return nil, fmt.Errorf("qdrantdouble: %w", err)
	}
	return s, nil
}

// Address is Addr as one host:port string, the form the operator's
// --qdrant-endpoint-override takes.
func (s *Server) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Addr is the host and port to put in qdrant.Config.
func (s *Server) Addr() (host string, port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, p, _ := net.SplitHostPort(s.addr)
	port, _ = strconv.Atoi(p)
	return h, port
}

// Stop closes the listener and every open connection; calls in flight and calls made while
// stopped fail with codes.Unavailable on the client. The data is kept. Stop is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.grpcSrv, s.serveCh
	s.grpcSrv, s.serveCh = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-done
}

// Restart stops the server (if running) and serves again on the same address, with the same data,
// as a restarted Qdrant with persistent storage would. Clients reconnect by themselves; as against
// a real restart, a go-client connection that failed to reconnect while the server was down
// answers Unavailable until its reconnect backoff (about a second) has run out, so callers must
// retry.
func (s *Server) Restart() {
	if s.t != nil {
		s.t.Helper()
	}
	s.Stop()
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	// The port was just released; another process could take it in between, so retry briefly
	// before failing the test.
	var err error
	for i := 0; i < 50; i++ {
		if err = s.listen(addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.t == nil {
		panic(fmt.Sprintf("qdrantdouble: restart on %s: %v", addr, err))
	}
	s.t.Fatalf("qdrantdouble: restart on %s: %v", addr, err)
}

// SetFault replaces the fault injector at run time (nil removes it); see WithFault.
func (s *Server) SetFault(fn func(method string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = fn
}

// Calls is how many times the RPC was received, failed ones included. method may be the full name
// ("/qdrant.Points/Upsert", i.e. qdrant.Points_Upsert_FullMethodName) or short ("Points/Upsert").
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[fullMethod(method)]
}

// Collection returns what Collections/Get would return for the collection right now.
func (s *Server) Collection(name string) (*qdrant.CollectionInfo, bool) {
	return s.data.collectionInfo(name)
}

// Points is the number of points in the collection (0 if it does not exist).
func (s *Server) Points(collection string) int {
	return s.data.pointCount(collection)
}

func (s *Server) listen(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.intercept),
		// Qdrant (tonic) sets no decoding limit on its public gRPC services (src/tonic/mod.rs:
		// max_decoding_message_size(usize::MAX)); grpc-go's default of 4 MiB would refuse big
		// upsert batches Qdrant accepts.
		grpc.MaxRecvMsgSize(math.MaxInt32),
		// The go-client pings every 10 s even without calls in flight; tonic does not police
		// pings, grpc-go's default policy would answer GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	)
	qdrant.RegisterQdrantServer(srv, &healthService{})
	qdrant.RegisterCollectionsServer(srv, &collectionsService{data: s.data})
	qdrant.RegisterPointsServer(srv, &pointsService{data: s.data})

	done := make(chan struct{})
	s.mu.Lock()
	s.addr = lis.Addr().String()
	s.grpcSrv, s.serveCh = srv, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when Stop is called
	}()
	return nil
}

// intercept runs in front of every RPC: count it, check the API key like Qdrant's auth middleware,
// then let the fault injector have its say.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.mu.Lock()
	s.calls[info.FullMethod]++
	fault := s.fault
	s.mu.Unlock()

	if err := s.authenticate(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	if fault != nil {
		if err := fault(info.FullMethod); err != nil {
			return nil, err
		}
	}
	resp, err := handler(ctx, req)
	if up, ok := req.(*qdrant.UpsertPoints); ok && err == nil {
		s.mu.Lock()
		if s.upserted == nil {
			s.upserted = map[string]map[string]int{}
		}
		byDoc := s.upserted[up.GetCollectionName()]
		if byDoc == nil {
			byDoc = map[string]int{}
			s.upserted[up.GetCollectionName()] = byDoc
		}
		for _, p := range up.GetPoints() {
			byDoc[p.GetPayload()["document_id"].GetStringValue()]++
		}
		s.mu.Unlock()
	}
	return resp, err
}

// UpsertedByDocument is how many points successful upserts wrote into the collection, per
// payload document_id (a point written twice counts twice): a test compares it with the chunks
// each document has to see how much embedding work was repeated.
func (s *Server) UpsertedByDocument(collection string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.upserted[collection] {
		out[k] = v
	}
	return out
}

// authenticate mirrors Qdrant's gRPC auth layer. Checked in qdrant/qdrant:
//   - src/tonic/auth.rs: the health checks (/qdrant.Qdrant/HealthCheck, /grpc.health.v1.Health/Check)
//     bypass authentication; AuthError::Unauthorized maps to Status::unauthenticated (since the JWT
//     RBAC work; releases before 1.9 answered permission_denied).
//   - src/common/auth/mod.rs (AuthKeys::validate_request, extract_key): the key is read from the
//     `api-key` header, else from `authorization: Bearer …`; a missing key is "Must provide an API
//     key or an Authorization bearer token", a wrong one "Invalid API key or JWT".
func (s *Server) authenticate(ctx context.Context, method string) error {
	if (s.apiKey == "" && s.readOnlyKey == "") || method == qdrant.Qdrant_HealthCheck_FullMethodName {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	key := ""
	if v := md.Get("api-key"); len(v) > 0 {
		key = v[0]
	} else if v := md.Get("authorization"); len(v) > 0 && strings.HasPrefix(v[0], "Bearer ") {
		key = strings.TrimPrefix(v[0], "Bearer ")
	} else {
		return status.Error(codes.Unauthenticated, "Must provide an API key or an Authorization bearer token")
	}
	if s.apiKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.apiKey)) == 1 {
		return nil
	}
	if s.readOnlyKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.readOnlyKey)) == 1 {
		if !readMethod(method) {
			return status.Error(codes.PermissionDenied, "Write access denied")
		}
		return nil
	}
	return status.Error(codes.Unauthenticated, "Invalid API key or JWT")
}

// readMethod says whether a gRPC method only reads (what a read-only key may call).
func readMethod(method string) bool {
	name := method[strings.LastIndex(method, "/")+1:]
	for _, prefix := range []string{"Get", "List", "Query", "Search", "Count", "Scroll", "Recommend", "Discover", "CollectionExists", "Facet", "HealthCheck", "CollectionClusterInfo"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// fullMethod turns "Points/Upsert" or "qdrant.Points/Upsert" into "/qdrant.Points/Upsert".
func fullMethod(m string) string {
	m = strings.TrimPrefix(m, "/")
	if !strings.HasPrefix(m, "qdrant.") {
		m = "qdrant." + m
	}
	return "/" + m
}

// healthService answers HealthCheck like src/tonic/mod.rs (QdrantService::health_check), with the
// title Qdrant's VersionInfo carries.
type healthService struct {
	qdrant.UnimplementedQdrantServer
}

func (*healthService) HealthCheck(context.Context, *qdrant.HealthCheckRequest) (*qdrant.HealthCheckReply, error) {
	return &qdrant.HealthCheckReply{Title: "qdrant - vector search engine", Version: Version}, nil
}

// errUnimplemented refuses, loudly, a request option the double does not model.
func errUnimplemented(format string, args ...any) error {
	return status.Error(codes.Unimplemented, "qdrantdouble: "+fmt.Sprintf(format, args...)+" is not implemented by the test double")
}

// elapsed is the `time` field Qdrant puts in every response (seconds).
func elapsed(start time.Time) float64 { return time.Since(start).Seconds() }
