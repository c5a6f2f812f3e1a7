# cmake -DIN=set.pb -DOUT=x.inc -DNAME=a/b.proto -DVAR=desc_0 -P embed_descriptor.cmake
cmake_minimum_required(VERSION 3.16)
# IN is a FileDescriptorSet holding exactly one file: field 1 (tag 0x0a),
# a varint length, then the FileDescriptorProto.  OUT gets
# "static const uint8_t VAR[] = {...};" with that FileDescriptorProto.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
string(SUBSTRING "${hex}" 0 2 tag)
if(NOT tag STREQUAL "0a")
  message(FATAL_ERROR "${IN}: not a one-file FileDescriptorSet")
endif()
# Skip the length varint: bytes with the high bit set continue it.
set(pos 2)
while(TRUE)
  string(SUBSTRING "${hex}" ${pos} 2 b)
  math(EXPR pos "${pos} + 2")
  math(EXPR v "0x${b}")
  if(v LESS 128)
    break()
  endif()
endwhile()
math(EXPR len "${n} - ${pos}")
string(SUBSTRING "${hex}" ${pos} ${len} body)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${body}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* ${NAME} */\nstatic const uint8_t ${VAR}[] = {\n${body}\n};\n")
