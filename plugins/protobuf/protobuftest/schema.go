// Package protobuftest holds a user schema for the protobuf formatter's
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

// UserSchema returns the seed's pblib.cluster.LoggableMessage, as a user
// might write it, compiled to a FileDescriptorSet, and its descriptor.
func UserSchema() ([]byte, protoreflect.MessageDescriptor, error) {
	s := func(v string) *string { return &v }
	i := func(v int32) *int32 { return &v }
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: s(name), Number: i(num), Type: typ.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: s(name)}
		if typeName != "" {
			f.TypeName = s(typeName)
		}
		return f
	}
	attrsField := field("attrs", 9, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".cluster.LoggableMessage.AttrsEntry")
	attrsField.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	file := &descriptorpb.FileDescriptorProto{
		Name:       s("cluster/loggable.proto"),
		Package:    s("cluster"),
		Syntax:     s("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
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
		}},
	}
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto), file,
	}}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, nil, err
	}
	d, err := files.FindDescriptorByName("cluster.LoggableMessage")
	if err != nil {
		return nil, nil, err
	}
	b, err := proto.Marshal(set)
	if err != nil {
		return nil, nil, err
	}
	return b, d.(protoreflect.MessageDescriptor), nil
}
