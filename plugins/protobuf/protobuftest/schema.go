// Package protobuftest holds user schemas for the protobuf formatter's
// tests and benchmarks.
package protobuftest

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Message is the full name of the message UserSchema describes.
const Message = "cluster.LoggableMessage"

// TextMessage is the full name of the message TextSchema describes.
const TextMessage = "cluster.TextMessage"

func s(v string) *string { return &v }

func field(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{Name: s(name), Number: &num, Type: typ.Enum(),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: s(name)}
	if typeName != "" {
		f.TypeName = s(typeName)
	}
	return f
}

// UserSchema returns the seed's pblib.cluster.LoggableMessage, as a user
// might write it, compiled to a FileDescriptorSet, and its descriptor.
func UserSchema() ([]byte, protoreflect.MessageDescriptor, error) {
	attrsField := field("attrs", 9, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".cluster.LoggableMessage.AttrsEntry")
	attrsField.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	return compile(&descriptorpb.DescriptorProto{
		Name: s("LoggableMessage"),
		Field: []*descriptorpb.FieldDescriptorProto{
			field("time", 1, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Timestamp"),
			field("level", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
			field("message", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
			field("worker", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
			field("seq", 5, descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""),
			field("status", 6, descriptorpb.FieldDescriptorProto_TYPE_INT32, ""),
			field("path", 7, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
			field("ratio", 8, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, ""),
			attrsField,
			field("pid", 10, descriptorpb.FieldDescriptorProto_TYPE_SINT64, ""),
			field("started", 11, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Timestamp"),
		},
		NestedType: []*descriptorpb.DescriptorProto{{
			Name: s("AttrsEntry"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("key", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
				field("value", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
			},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		}},
	}, Message)
}

// TextSchema returns cluster.TextMessage, whose fields are all strings:
// every number, time, byte string and flag of the sample records is
// written as text into it (and the fields of other sample attributes
// hold what they do in UserSchema).
func TextSchema() ([]byte, protoreflect.MessageDescriptor, error) {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING
	var fields []*descriptorpb.FieldDescriptorProto
	for i, name := range []string{"time", "level", "message", "worker", "worker_index", "pid", "seq", "source",
		"status", "bytes", "ratio", "cached", "token", "started", "elapsed", "sender", "hostname", "application"} {
		fields = append(fields, field(name, int32(i+1), str, ""))
	}
	return compile(&descriptorpb.DescriptorProto{Name: s("TextMessage"), Field: fields}, TextMessage)
}

// compile puts msg in package cluster, compiles it with its imports to a
// FileDescriptorSet and returns that and the descriptor of name.
func compile(msg *descriptorpb.DescriptorProto, name protoreflect.FullName) ([]byte, protoreflect.MessageDescriptor, error) {
	file := &descriptorpb.FileDescriptorProto{
		Name:        s("cluster/" + string(name.Name()) + ".proto"),
		Package:     s("cluster"),
		Syntax:      s("proto3"),
		Dependency:  []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{msg},
	}
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto), file,
	}}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, nil, err
	}
	d, err := files.FindDescriptorByName(name)
	if err != nil {
		return nil, nil, err
	}
	b, err := proto.Marshal(set)
	if err != nil {
		return nil, nil, err
	}
	return b, d.(protoreflect.MessageDescriptor), nil
}
