# m1native: N-API addon. The compute kernels are compiled once per ISA (scalar, AVX2+FMA+F16C,
# AVX-512 F/BW/VL/DQ[+BF16]) as separate static libraries with their own flags; dispatch.cc picks
# one at load time. Never -march=native: the result must run on any CPU of the target arch.
{
  'variables': {
    # set by build.mjs; defaults work for a plain `node-gyp rebuild` inside this package
    'napi_include_dir%': '../node_modules/node-addon-api',
    'm1_avx512bf16%': 0,
    'kernel_sources': [
      'src/gemm.cc',
      'src/elementwise.cc',
      'src/attention.cc',
      'src/lightning.cc',
      'src/backward_elementwise.cc',
      'src/backward_attention.cc',
      'src/table.cc',
      'src/peak.cc',
      'src/optimizer.cc',
    ],
  },
  'target_defaults': {
    'include_dirs': ['<(napi_include_dir)', 'src'],
    'defines': [
      'NAPI_VERSION=8',
      'NAPI_CPP_EXCEPTIONS',
      'NODE_ADDON_API_CPP_EXCEPTIONS_ALL',
      'NODE_ADDON_API_DISABLE_DEPRECATED',
    ],
    'cflags!': ['-fno-exceptions', '-O2', '-O0'],
    'cflags_cc!': ['-fno-exceptions', '-std=gnu++17', '-std=gnu++20'],
    'cflags': ['-O3', '-fno-math-errno', '-fPIC'],
    'cflags_cc': ['-std=c++17', '-fexceptions'],
    'xcode_settings': {
      'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
      'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
      'GCC_OPTIMIZATION_LEVEL': '3',
      'MACOSX_DEPLOYMENT_TARGET': '10.15',
      'OTHER_CFLAGS': ['-fno-math-errno'],
    },
    'msvs_settings': {
      'VCCLCompilerTool': {
        'ExceptionHandling': 1,
        'AdditionalOptions': ['/std:c++17'],
      },
    },
  },
  'targets': [
    {
      'target_name': 'm1k_scalar',
      'type': 'static_library',
      'sources': ['<@(kernel_sources)'],
      'defines': ['M1_ISA_SCALAR'],
    },
    {
      'target_name': 'm1native',
      'sources': [
        'src/addon.cc',
        'src/args.cc',
        'src/ops.cc',
        'src/backward_ops.cc',
        'src/sampling.cc',
        'src/decoder.cc',
        'src/dispatch.cc',
        'src/threadpool.cc',
        'src/moe.cc',
        'src/moe_backward.cc',
        'src/layer.cc',
        'src/pool.cc',
      ],
      'dependencies': ['m1k_scalar'],
      'conditions': [
        ['target_arch=="x64" and OS!="win"', {
          'dependencies': ['m1k_avx2', 'm1k_avx512'],
          'defines': ['M1_HAVE_AVX2', 'M1_HAVE_AVX512'],
        }],
        ['target_arch=="x64" and OS!="win" and m1_avx512bf16==1', {
          'defines': ['M1_HAVE_AVX512BF16'],
        }],
      ],
    },
  ],
  'conditions': [
    ['target_arch=="x64" and OS!="win"', {
      'targets': [
        {
          'target_name': 'm1k_avx2',
          'type': 'static_library',
          'sources': ['<@(kernel_sources)'],
          'defines': ['M1_ISA_AVX2'],
          'cflags': ['-mavx2', '-mfma', '-mf16c'],
          'xcode_settings': {'OTHER_CFLAGS': ['-mavx2', '-mfma', '-mf16c']},
        },
        {
          'target_name': 'm1k_avx512',
          'type': 'static_library',
          'sources': ['<@(kernel_sources)'],
          'defines': ['M1_ISA_AVX512'],
          'cflags': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq'],
          'xcode_settings': {
            'OTHER_CFLAGS': ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq'],
          },
          'conditions': [
            ['m1_avx512bf16==1', {
              'cflags': ['-mavx512bf16'],
              'xcode_settings': {'OTHER_CFLAGS': ['-mavx512bf16']},
              'defines': ['M1_AVX512BF16'],
            }],
          ],
        },
      ],
    }],
  ],
}
