module github.com/shareprefill/shareprefill

go 1.26

require (
	github.com/vulkan-go/vulkan v0.0.0-20221209234627-c0a353ae26c8
	github.com/x448/float16 v0.8.4
	gonum.org/v1/gonum v0.17.0
)
