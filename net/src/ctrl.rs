//! The control protocol's codec: one length-capped request and response per stream.

use crate::wire::{CtrlRequest, CtrlResponse, MAX_CTRL_REQUEST, MAX_CTRL_RESPONSE};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::{self};
use libp2p::StreamProtocol;

/// Codec of `/cairn/ctrl/1`: one message per stream, read to the end with a size cap.
#[derive(Clone, Default)]
pub(crate) struct CtrlCodec;

async fn read_capped<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    cap: usize,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(cap as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message above the size limit",
        ));
    }
    Ok(buf)
}

fn invalid(e: crate::wire::WireError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl request_response::Codec for CtrlCodec {
    type Protocol = StreamProtocol;
    type Request = CtrlRequest;
    type Response = CtrlResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<CtrlRequest> {
        CtrlRequest::decode(&read_capped(io, MAX_CTRL_REQUEST).await?).map_err(invalid)
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<CtrlResponse> {
        CtrlResponse::decode(&read_capped(io, MAX_CTRL_RESPONSE).await?).map_err(invalid)
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: CtrlRequest,
    ) -> std::io::Result<()> {
        io.write_all(&req.encode()).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: CtrlResponse,
    ) -> std::io::Result<()> {
        io.write_all(&res.encode()).await?;
        io.close().await
    }
}
