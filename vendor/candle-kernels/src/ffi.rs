//! esx's build leaves candle's MoE and GGUF kernels out (they link
//! libcudart at start-up); these entry points only abort.
use core::ffi::c_void;

fn unavailable(name: &str) -> ! {
    eprintln!("candle kernel {name} is not built into this esx (quantized models are not supported)");
    std::process::abort()
}

#[cfg(feature = "cutile")]
pub unsafe extern "C" fn candle_launch_moe_align(_topk_ids: *const i32, _sorted_token_ids: *mut i32, _expert_ids: *mut i32, _num_tokens_post_pad: *mut i32, _cumsum: *mut i32, _num_experts: i32, _block_size: i32, _numel: i32, _max_num_tokens_padded: i32, _stream: *mut c_void) -> i32 {
    unavailable("candle_launch_moe_align")
}
pub unsafe extern "C" fn moe_gemm_wmma(_input: *const c_void, _weights: *const c_void, _sorted_token_ids: *const i32, _expert_ids: *const i32, _topk_weights: *const f32, _output: *mut c_void, _expert_counts: *mut i32, _expert_offsets: *mut i32, _num_experts: i32, _topk: i32, _size_m: i32, _size_n: i32, _size_k: i32, _dtype: i32, _is_prefill: bool, _stream: i64) {
    unavailable("moe_gemm_wmma")
}
pub unsafe extern "C" fn moe_gemm_gguf(_input: *const f32, _weights: *const c_void, _sorted_token_ids: *const i32, _expert_ids: *const i32, _topk_weights: *const f32, _output: *mut c_void, _num_experts: i32, _topk: i32, _size_m: i32, _size_n: i32, _size_k: i32, _gguf_dtype: i32, _stream: i64) {
    unavailable("moe_gemm_gguf")
}
pub unsafe extern "C" fn moe_gemm_gguf_prefill(_input: *const c_void, _weights: *const u8, _sorted_token_ids: *const i32, _expert_ids: *const i32, _topk_weights: *const f32, _output: *mut c_void, _num_experts: i32, _topk: i32, _size_m: i32, _size_n: i32, _size_k: i32, _input_dtype: i32, _gguf_dtype: i32, _stream: i64) {
    unavailable("moe_gemm_gguf_prefill")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_0_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_0_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_1_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_1_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_0_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_0_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_1_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_1_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q8_0_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q8_0_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q2_k_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q2_k_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q3_k_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q3_k_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_k_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_k_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_k_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_k_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q6_k_bf16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q6_k_bf16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_0_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_0_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_1_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_1_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_0_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_0_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_1_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_1_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q8_0_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q8_0_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q2_k_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q2_k_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q3_k_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q3_k_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_k_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_k_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_k_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_k_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q6_k_f32_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q6_k_f32_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_0_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_0_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_1_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_1_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_0_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_0_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_1_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_1_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q8_0_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q8_0_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q2_k_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q2_k_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q3_k_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q3_k_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q4_k_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q4_k_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q5_k_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q5_k_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_q6_k_f16_plain(_vx: *const c_void, _vy: *const c_void, _dst: *mut c_void, _ncols_x: i32, _nrows_x: i32, _stride_col_y: i32, _stride_col_dst: i32, _b_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_q6_k_f16_plain")
}
pub unsafe extern "C" fn launch_mmvq_gguf_quantize_q8_1_bf16(_x: *const c_void, _vy: *mut c_void, _kx: i32, _kx_padded: i32, _num_rows: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_quantize_q8_1_bf16")
}
pub unsafe extern "C" fn launch_mmvq_gguf_quantize_q8_1_f16(_x: *const c_void, _vy: *mut c_void, _kx: i32, _kx_padded: i32, _num_rows: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_quantize_q8_1_f16")
}
pub unsafe extern "C" fn launch_mmvq_gguf_quantize_q8_1_f32(_x: *const c_void, _vy: *mut c_void, _kx: i32, _kx_padded: i32, _num_rows: i32, _stream: *mut c_void) {
    unavailable("launch_mmvq_gguf_quantize_q8_1_f32")
}
pub unsafe extern "C" fn launch_mmq_quantize_q8_1_D4(_x: *const c_void, _ids: *const i32, _vy: *mut c_void, _type_x: i32, _ne00: i64, _s01: i64, _s02: i64, _s03: i64, _ne0: i64, _ne1: i64, _ne2: i64, _ne3: i64, _stream: *mut c_void) {
    unavailable("launch_mmq_quantize_q8_1_D4")
}
pub unsafe extern "C" fn launch_mmq_quantize_q8_1_DS4(_x: *const c_void, _ids: *const i32, _vy: *mut c_void, _type_x: i32, _ne00: i64, _s01: i64, _s02: i64, _s03: i64, _ne0: i64, _ne1: i64, _ne2: i64, _ne3: i64, _stream: *mut c_void) {
    unavailable("launch_mmq_quantize_q8_1_DS4")
}
pub unsafe extern "C" fn launch_mmq_quantize_q8_1_D2S6(_x: *const c_void, _ids: *const i32, _vy: *mut c_void, _type_x: i32, _ne00: i64, _s01: i64, _s02: i64, _s03: i64, _ne0: i64, _ne1: i64, _ne2: i64, _ne3: i64, _stream: *mut c_void) {
    unavailable("launch_mmq_quantize_q8_1_D2S6")
}
pub unsafe extern "C" fn launch_mmq_gguf_q4_0(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q4_0")
}
pub unsafe extern "C" fn launch_mmq_gguf_q4_1(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q4_1")
}
pub unsafe extern "C" fn launch_mmq_gguf_q5_0(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q5_0")
}
pub unsafe extern "C" fn launch_mmq_gguf_q5_1(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q5_1")
}
pub unsafe extern "C" fn launch_mmq_gguf_q8_0(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q8_0")
}
pub unsafe extern "C" fn launch_mmq_gguf_q2_k(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q2_k")
}
pub unsafe extern "C" fn launch_mmq_gguf_q3_k(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q3_k")
}
pub unsafe extern "C" fn launch_mmq_gguf_q4_k(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q4_k")
}
pub unsafe extern "C" fn launch_mmq_gguf_q5_k(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q5_k")
}
pub unsafe extern "C" fn launch_mmq_gguf_q6_k(_tmp_fixup: *mut c_void, _x: *const c_void, _y: *const c_void, _dst: *mut c_void, _ncols_x: i64, _nrows_x: i64, _ncols_y: i64, _stride_row_x: i64, _stride_col_dst: i64, _cc: i32, _nsm: i32, _smpbo: i64, _warp_size: i32, _stream: *mut c_void) {
    unavailable("launch_mmq_gguf_q6_k")
}
