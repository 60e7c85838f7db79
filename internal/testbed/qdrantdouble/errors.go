package qdrantdouble

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Qdrant's errors, as the gRPC client sees them.
//
// Most of Qdrant's errors are a StorageError whose Display adds a prefix to a description
// (lib/storage/src/content_manager/errors.rs: BadInput and AlreadyExists → "Wrong input: …",
// NotFound → "Not found: …", BadRequest → "Bad request: …"), and which becomes a tonic Status with
// `format!("{error}")` as its message (lib/storage/src/content_manager/conversions.rs,
// `impl From<StorageError> for Status`: BadInput/BadRequest → InvalidArgument, NotFound → NotFound,
// AlreadyExists → AlreadyExists, Forbidden → PermissionDenied, ...). Request-conversion errors are
// raised before that, as bare `Status::invalid_argument(...)` without prefix
// (lib/api/src/grpc/conversions.rs).

// errCollectionNotFound: lib/storage/src/content_manager/collections_ops.rs
// (Checker::validate_collection_exists) → StorageError::NotFound.
func errCollectionNotFound(name string) error {
	return status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", name)
}

// errCollectionExists: same file (validate_collection_not_exists) → StorageError::AlreadyExists,
// whose Display is "Wrong input: …" but whose code is AlreadyExists. (Releases before ~1.8 used
// BadInput, i.e. InvalidArgument, for this.)
func errCollectionExists(name string) error {
	return status.Errorf(codes.AlreadyExists, "Wrong input: Collection `%s` already exists!", name)
}

// errPointNotFound: lib/collection/src/operations/types.rs, CollectionError::PointNotFound
// "No point with id {missed_point_id} found", turned into StorageError::NotFound with that text.
func errPointNotFound(id pointID) error {
	return status.Errorf(codes.NotFound, "Not found: No point with id %s found", id)
}

// errBadInput is StorageError::BadInput, e.g. the upsert dimension check in
// src/common/validate_vectors.rs ("Vector dimension error: expected dim: X, got Y", checked before
// the WAL so that wait=false upserts fail too), or a search vector of the wrong size
// (lib/segment/src/common/operation_error.rs, OperationError::WrongVectorDimension, same text,
// reaching the client as CollectionError::BadInput).
func errBadInput(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, "Wrong input: "+fmt.Sprintf(format, args...))
}

// errBadRequest is StorageError::BadRequest.
func errBadRequest(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, "Bad request: "+fmt.Sprintf(format, args...))
}

// errInvalid is a bare Status::invalid_argument from the gRPC request conversions.
func errInvalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// errValidation mimics the request validation layer (the `validator` crate via
// src/tonic/verification.rs / api::grpc::validate), which answers InvalidArgument
// "Validation error in body: [field: message]". The exact wording of the message part is not
// copied from Qdrant; only the code and the prefix are.
func errValidation(field, msg string) error {
	return status.Errorf(codes.InvalidArgument, "Validation error in body: [%s: %s]", field, msg)
}
